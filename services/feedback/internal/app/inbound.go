package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/store"
)

// Inbound is a complaint created by CreateComplaint, and whether this
// request created it.
type Inbound struct {
	Complaint complaint.Complaint
	// Created is false when the request id had been used before: nothing
	// new was done. Attached: the same customer's same problem was open
	// already, and the request was recorded on that complaint (seeds 000, 002).
	Created  bool
	Attached bool
}

// CreateComplaint records an inbound complaint; see CreateComplaintTx.
func (a *App) CreateComplaint(ctx context.Context, d complaint.InboundDraft) (Inbound, error) {
	return inTx(ctx, a, func(tx pgx.Tx) (Inbound, error) { return a.CreateComplaintTx(ctx, tx, d) })
}

// CreateComplaintTx records within the caller's transaction a complaint
// the customer raised by phone, letter, web form, e-mail or in person
// (issue 17). It is routed by the same rules as a complaint a follow-up
// finds (a.Rules: department, severity, deadline) and joins the same loop:
// its opened step writes ComplaintEscalated, and acknowledging, resolving
// (ComplaintResolved: the scheduler plans the confirmation visit), reopening
// and closing are those of every complaint. The same problem of the same
// customer still open is recorded once (seeds 000, 002): the request is
// attached to that complaint (a raised_again step, no event). A request id
// used before answers the complaint it made, Created false. The caller
// (auth.Principal) is who entered it; an agent or leader names an org unit
// of its token, an integrator submits web forms only.
func (a *App) CreateComplaintTx(ctx context.Context, tx pgx.Tx, d complaint.InboundDraft) (Inbound, error) {
	now := a.now()
	d.Normalize()
	d.TenantID = tenant.Or(d.TenantID)
	if err := d.Check(now); err != nil {
		return Inbound{}, err
	}
	if err := inboundCaller(ctx, &d); err != nil {
		return Inbound{}, err
	}
	if d.VisitID != "" {
		v, err := store.GetVisit(ctx, tx, d.TenantID, d.VisitID)
		if errors.Is(err, store.ErrNotFound) {
			return Inbound{}, invalid.New("visit_id", fmt.Sprintf("no visit %q in tenant %s: feedback knows the visits that fell due", d.VisitID, d.TenantID))
		}
		if err != nil {
			return Inbound{}, err
		}
		var l invalid.List
		if v.CustomerID != "" && v.CustomerID != d.CustomerID {
			l.Add("visit_id", "the visit is of another customer")
		}
		if d.OrgUnit != "" && v.OrgUnit != "" && d.OrgUnit != v.OrgUnit {
			l.Add("org_unit", fmt.Sprintf("the visit belongs to org unit %q", v.OrgUnit))
		}
		if d.ServiceID != "" && v.ServiceID != "" && d.ServiceID != v.ServiceID {
			l.Add("service_id", fmt.Sprintf("the visit follows service %q", v.ServiceID))
		}
		if err := l.Err(); err != nil {
			return Inbound{}, err
		}
		d.OrgUnit = v.OrgUnit
		if d.ServiceID == "" {
			d.ServiceID = v.ServiceID
		}
	}
	if err := inboundUnit(ctx, &d); err != nil {
		return Inbound{}, err
	}

	id := newID()
	prior, attached, done, err := store.ClaimRequest(ctx, tx, d.TenantID, d.RequestID, id, now)
	if err != nil {
		return Inbound{}, err
	}
	if done {
		c, err := store.GetComplaint(ctx, tx, d.TenantID, prior)
		if err != nil {
			return Inbound{}, err
		}
		return Inbound{Complaint: c, Attached: attached}, nil
	}

	// Held before any complaint, as LogVisit does, so that the records and
	// requests of one customer that raise the same problem go one by one.
	if err := store.LockCustomer(ctx, tx, d.TenantID, d.CustomerID); err != nil {
		return Inbound{}, err
	}
	c := complaint.Inbound(id, d, a.Rules, now)
	if c.Key != "" {
		m, found, err := store.FindOpenComplaint(ctx, tx, c.TenantID, c.CustomerID, c.Category, c.Key)
		if err != nil {
			return Inbound{}, err
		}
		if found {
			if err := store.AttachRequest(ctx, tx, c.TenantID, d.RequestID, m.ID); err != nil {
				return Inbound{}, err
			}
			// No event: the complaint was handed to its department already.
			if err := store.AddStep(ctx, tx, m.ID, c.RaisedAgainStep(m.Level)); err != nil {
				return Inbound{}, err
			}
			got, err := store.GetComplaint(ctx, tx, c.TenantID, m.ID)
			return Inbound{Complaint: got, Created: true, Attached: true}, err
		}
	}
	if err := store.InsertComplaint(ctx, tx, "", c); err != nil {
		return Inbound{}, err
	}
	if err := logStep(ctx, tx, c, c.InboundStep()); err != nil {
		return Inbound{}, err
	}
	got, err := store.GetComplaint(ctx, tx, c.TenantID, c.ID)
	return Inbound{Complaint: got, Created: true}, err
}

// inboundCaller takes who enters the complaint from the caller's token:
// an agent or a leader owns it (seed 002, first-contact ownership); an
// integrator submits web forms only and owns none. Calls without a
// principal (tests) keep the draft's.
func inboundCaller(ctx context.Context, d *complaint.InboundDraft) error {
	p, ok := auth.From(ctx)
	if !ok {
		return nil
	}
	d.CreatedBy, d.OwnerAgentID = p.Actor(), p.AgentID
	if p.Has(auth.Integrator) && !p.HasAny(auth.Agent, auth.Leader, auth.Director) && d.ReceivedVia != complaint.ViaWeb {
		return auth.Deny("received_via", "an integrator submits complaints of its web forms only (received_via web)")
	}
	return nil
}

// inboundUnit settles the complaint's org unit: an agent or a leader (who
// is not a director) names one of its token's org units, its only one when
// blank; others name one.
func inboundUnit(ctx context.Context, d *complaint.InboundDraft) error {
	p, ok := auth.Restricted(ctx, auth.Director, auth.Integrator)
	switch {
	case ok && d.OrgUnit == "" && len(p.OrgUnits) == 1:
		d.OrgUnit = p.OrgUnits[0]
	case ok && d.OrgUnit != "" && !p.InUnits(d.OrgUnit):
		field := "org_unit"
		if d.VisitID != "" {
			field = "visit_id"
		}
		return auth.Deny(field, fmt.Sprintf("org unit %q is not one of the caller's", d.OrgUnit))
	}
	if d.OrgUnit == "" {
		return invalid.New("org_unit", "is required: the org unit (branch) the complaint belongs to")
	}
	return nil
}
