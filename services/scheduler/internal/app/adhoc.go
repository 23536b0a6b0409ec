package app

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/encoding/protojson"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/scheduler/internal/engine"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

// Bounds of an ad-hoc follow-up.
const (
	// AdHocSkew is how far in the past an ad-hoc follow-up's due time may
	// be (a clock behind the scheduler's): it is due now then.
	AdHocSkew = 5 * time.Minute
	// AdHocHorizon is how far ahead an ad-hoc follow-up may be asked for.
	AdHocHorizon = 366 * 24 * time.Hour
	// MaxAdHocReason bounds an ad-hoc follow-up's reason.
	MaxAdHocReason = 500
)

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,100}$`)

// AdHoc is a one-off follow-up visit an agent or a leader asks for
// (ScheduleFollowUp).
type AdHoc struct {
	Tenant, RequestID, CustomerID string
	// ServiceID and ComplaintID, when set, name what the follow-up is about.
	ServiceID, ComplaintID string
	OrgUnit                string
	// Due is when it is wanted (zero: now); Deadline when it stops being
	// timely (zero: Due + 48 hours).
	Due, Deadline time.Time
	Channel       int32
	Group, Reason string
}

// Scheduled is the visit of an ad-hoc follow-up, and whether this request
// planned it.
type Scheduled struct {
	Visit   visit.Visit
	Created bool
}

// AdHocVisitID is the id of the visit the tenant's request requestID
// plans: the same request names the same visit, so a retry finds it.
func AdHocVisitID(tenant, requestID string) string {
	h := sha256.Sum256([]byte("huifang.adhoc/1\x00" + tenant + "\x00" + requestID))
	h[6] = h[6]&0x0f | 0x80 // a UUID of version 8 (custom), variant RFC 9562
	h[8] = h[8]&0x3f | 0x80
	s := hex.EncodeToString(h[:16])
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

// check returns the violations of in at now.
func (in *AdHoc) check(now time.Time) error {
	for _, s := range []*string{&in.RequestID, &in.CustomerID, &in.ServiceID, &in.ComplaintID, &in.OrgUnit, &in.Group, &in.Reason} {
		*s = strings.TrimSpace(*s)
	}
	var l invalid.List
	switch {
	case in.RequestID == "":
		l.Add("request_id", "is required: the client's id of this request, so that a retry or a double click plans nothing twice")
	case !requestIDRE.MatchString(in.RequestID):
		l.Add("request_id", "must be 1 to 100 of A-Z a-z 0-9 . _ : -")
	}
	if in.CustomerID == "" {
		l.Add("customer_id", "is required: the customer to follow up")
	}
	if in.OrgUnit == "" {
		l.Add("org_unit", "is required: the org unit (branch) the visit belongs to")
	}
	switch n := len([]rune(in.Reason)); {
	case n == 0:
		l.Add("reason", "is required: why the follow-up is made")
	case n > MaxAdHocReason:
		l.Add("reason", fmt.Sprintf("at most %d characters", MaxAdHocReason))
	}
	if _, ok := typesv1.Channel_name[in.Channel]; !ok {
		l.Add("channel", "must be a huifang.types.v1.Channel (unspecified: phone)")
	}
	switch {
	case in.Due.IsZero():
	case in.Due.Before(now.Add(-AdHocSkew)):
		l.Add("due_at", fmt.Sprintf("%s is in the past; leave it unset for now", in.Due.UTC().Format(time.RFC3339)))
	case in.Due.After(now.Add(AdHocHorizon)):
		l.Add("due_at", "at most a year ahead")
	}
	if !in.Deadline.IsZero() && in.Deadline.Before(or(in.Due, now)) {
		l.Add("deadline", "must not be before due_at")
	}
	return l.Err()
}

// ScheduleFollowUp plans an ad-hoc follow-up in a transaction of its own;
// see ScheduleFollowUpTx.
func (a *App) ScheduleFollowUp(ctx context.Context, in AdHoc) (out Scheduled, err error) {
	err = a.inTx(ctx, func(tx pgx.Tx) error {
		out, err = a.ScheduleFollowUpTx(ctx, tx, in)
		return err
	})
	return out, err
}

// ScheduleFollowUpTx plans within tx a one-off follow-up visit an agent or
// a leader asked for (issue 17) by the path of the follow-ups feedback asks
// for (PlanFollowUpTx): policy "followup", the next round of the service's
// or complaint's follow-ups (or of the request's own), on site for a major
// complaint (seed 000), placed by the contact policy and announced
// (VisitPlanned); it falls due through the same firing, which applies the
// customer's opt-outs and the frequency caps, and fires at once when due
// now. The request id names the visit: a request made before answers its
// visit, Created false. A leader or an agent names an org unit of its token.
func (a *App) ScheduleFollowUpTx(ctx context.Context, tx pgx.Tx, in AdHoc) (Scheduled, error) {
	now := a.Now().UTC()
	if err := in.check(now); err != nil {
		return Scheduled{}, err
	}
	if err := visitsInScope(ctx, "org_unit", in.OrgUnit); err != nil {
		return Scheduled{}, err
	}
	by := "the scheduler's caller"
	if p, ok := auth.From(ctx); ok {
		by = p.Actor()
	}
	if err := store.LockRequest(ctx, tx, in.Tenant, in.RequestID); err != nil {
		return Scheduled{}, err
	}
	id := AdHocVisitID(in.Tenant, in.RequestID)
	v, err := store.GetVisit(ctx, tx, in.Tenant, id)
	switch {
	case err == nil:
		return Scheduled{Visit: v}, nil
	case !errors.Is(err, store.ErrNotFound):
		return Scheduled{}, err
	}
	snapshot, err := store.CustomerSnapshot(ctx, tx, in.Tenant, in.CustomerID)
	if err != nil {
		return Scheduled{}, err
	}
	if snapshot == nil {
		// A customer the scheduler planned nothing for yet: its id and unit;
		// dispatch takes the rest from intake's CustomerUpdated.
		if snapshot, err = protojson.Marshal(&typesv1.Customer{Id: in.CustomerID, OrgUnit: in.OrgUnit}); err != nil {
			return Scheduled{}, fmt.Errorf("customer snapshot: %w", err)
		}
	}
	if _, err := a.PlanFollowUpTx(ctx, tx, FollowUp{Tenant: in.Tenant, ServiceID: in.ServiceID, ComplaintID: in.ComplaintID,
		OrgUnit: in.OrgUnit, CustomerID: in.CustomerID, Customer: Customer{Snapshot: snapshot},
		Request: engine.Request{Due: in.Due, Deadline: in.Deadline, Channel: in.Channel, Group: in.Group, Reason: in.Reason, By: by},
		VisitID: id, Series: "adhoc:" + in.RequestID}); err != nil {
		return Scheduled{}, err
	}
	v, err = store.GetVisit(ctx, tx, in.Tenant, id)
	if errors.Is(err, store.ErrNotFound) {
		// The round's place was taken by a visit planned at the same moment
		// for the same service or complaint: the caller may try again.
		return Scheduled{}, fmt.Errorf("round of %s taken by a visit planned at the same time, try again: %w", cmp.Or(in.ServiceID, in.ComplaintID), store.ErrConflict)
	}
	return Scheduled{Visit: v, Created: true}, err
}
