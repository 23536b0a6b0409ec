package app

import (
	"context"

	"github.com/jackc/pgx/v5"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/services/scheduler/internal/engine"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

// FollowUp is a round of follow-up feedback asked for (FollowUpRequested).
type FollowUp struct {
	Tenant string
	// ServiceID names the service the round follows; empty: the complaint's
	// (ComplaintID) rounds.
	ServiceID, ComplaintID, OrgUnit string
	// CustomerID names the customer when Customer carries no id.
	CustomerID string
	Customer   Customer
	// Request is the round: when (zero: now), its deadline, channel, group, reason.
	Request engine.Request
	// VisitID is the planned visit's id; empty: a new one. Series, when
	// set, names the rounds when neither ServiceID nor ComplaintID does
	// (an ad-hoc follow-up's request).
	VisitID, Series string
}

// PlanFollowUp plans a requested round in a transaction of its own.
func (a *App) PlanFollowUp(ctx context.Context, in FollowUp) (id string, err error) {
	err = a.inTx(ctx, func(tx pgx.Tx) error {
		id, err = a.PlanFollowUpTx(ctx, tx, in)
		return err
	})
	return id, err
}

// PlanFollowUpTx plans the visit feedback asked for within tx (a promised
// reply, another round until the customer is satisfied: seed 000, 004): the
// next round of the service's (or the complaint's) follow-ups, on site for a
// major complaint, placed by the contact policy, announced (VisitPlanned).
// It returns the visit's id.
func (a *App) PlanFollowUpTx(ctx context.Context, tx pgx.Tx, in FollowUp) (string, error) {
	ctx = a.withDueNow(ctx)
	now := a.Now().UTC()
	req := in.Request
	req.Due = or(req.Due, now)
	customerID := in.CustomerID
	if customerID == "" {
		customerID = in.Customer.ID
	}
	serviceID := in.ServiceID
	switch {
	case serviceID != "":
	case in.ComplaintID == "" && in.Series != "":
		serviceID = in.Series
	default:
		serviceID = "complaint:" + in.ComplaintID
	}
	svc := policy.Service{Tenant: in.Tenant, ID: serviceID, Type: "followup", OrgUnit: in.OrgUnit, CompletedAt: now, CustomerID: customerID}
	last, err := store.LastOccurrence(ctx, tx, svc.Tenant, svc.ID, policy.FollowUpID)
	if err != nil {
		return "", err
	}
	var severity int32
	if in.ComplaintID != "" {
		if severity, err = store.ComplaintSeverity(ctx, tx, svc.Tenant, in.ComplaintID); err != nil {
			return "", err
		}
	}
	rules, err := rulesOf(ctx, tx, svc.Tenant)
	if err != nil {
		return "", err
	}
	prefs, err := prefsOf(ctx, tx, svc.Tenant, customerID)
	if err != nil {
		return "", err
	}
	planned := engine.FollowUp(req, last+1, severity == int32(typesv1.Severity_SEVERITY_MAJOR), rules, prefs)
	if _, err := updateCustomer(ctx, tx, svc.Tenant, in.Customer, 0, now, "feedback: FollowUpRequested for "+svc.ID); err != nil {
		return "", err
	}
	id := in.VisitID
	if id == "" {
		id = outbox.NewEventID()
	}
	v := visit.New(id, planned, svc, nil, in.Customer.Snapshot, in.ComplaintID, severity)
	_, err = insert(ctx, tx, v)
	return v.ID, err
}
