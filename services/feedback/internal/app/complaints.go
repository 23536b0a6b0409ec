package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/improvement"
	"github.com/huifang/huifang/services/feedback/internal/record"
	"github.com/huifang/huifang/services/feedback/internal/store"
)

// ComplaintView is a complaint, its history and its improvement plan.
type ComplaintView struct {
	Complaint complaint.Complaint
	History   []complaint.Step
	// Plan is the improvement plan (seed 003); nil when none is set.
	Plan *improvement.Plan
}

// GetComplaint returns a complaint and its history.
func (a *App) GetComplaint(ctx context.Context, tenantID, id string) (ComplaintView, error) {
	id = strings.TrimSpace(id) // not blank: feedback.proto's rule
	c, err := store.GetComplaint(ctx, a.DB, tenant.Or(tenantID), id)
	if errors.Is(err, store.ErrNotFound) {
		return ComplaintView{}, refuse(ErrNotFound, "complaint %s not found", id)
	}
	if err != nil {
		return ComplaintView{}, err
	}
	if err := complaintInScope(ctx, c, auth.Agent); err != nil {
		return ComplaintView{}, err
	}
	h, err := store.History(ctx, a.DB, id)
	if err != nil {
		return ComplaintView{}, err
	}
	v := ComplaintView{Complaint: c, History: h}
	if p, ok, err := store.GetPlan(ctx, a.DB, c.TenantID, c.ID); err != nil {
		return ComplaintView{}, err
	} else if ok {
		v.Plan = &p
	}
	return v, nil
}

// ComplaintList selects complaints for ListComplaints.
type ComplaintList struct {
	Tenant string
	// Status keeps the complaints of one status; Department a department's queue.
	Status     string
	Department string
	// After is the cursor: the complaints created before (AfterTime,
	// AfterID), newest first; an empty AfterID starts at the newest.
	AfterTime time.Time
	AfterID   string
	Limit     int
}

// ListComplaints lists complaints newest first.
func (a *App) ListComplaints(ctx context.Context, in ComplaintList) ([]complaint.Complaint, error) {
	status := strings.TrimSpace(in.Status)
	if status != "" && !slices.Contains(complaint.Statuses, status) {
		return nil, invalid.New("status", "must be one of "+strings.Join(complaint.Statuses, ", "))
	}
	department, err := complaintQueue(ctx, strings.TrimSpace(in.Department))
	if err != nil {
		return nil, err
	}
	return store.ListComplaints(ctx, a.DB, store.ComplaintFilter{Tenant: tenant.Or(in.Tenant), Status: status,
		Department: department, AfterTime: in.AfterTime, AfterID: in.AfterID, Limit: in.Limit})
}

// required adds a violation for each blank field (name, value).
func required(l *invalid.List, fields ...[2]string) {
	for _, f := range fields {
		if strings.TrimSpace(f[1]) == "" {
			l.Add(f[0], "is required")
		}
	}
}

// change runs decide on a complaint held for update, saves it and logs
// the steps decide returns, with their events, within tx.
func (a *App) change(ctx context.Context, tx pgx.Tx, tenantID, id string, decide func(c *complaint.Complaint, now time.Time) ([]complaint.Step, error)) (complaint.Complaint, error) {
	now := a.now()
	var steps []complaint.Step
	c, err := store.UpdateComplaint(ctx, tx, tenant.Or(tenantID), strings.TrimSpace(id), func(c *complaint.Complaint) error {
		if err := complaintInScope(ctx, *c); err != nil {
			return err
		}
		var err error
		steps, err = decide(c, now)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return complaint.Complaint{}, refuse(ErrNotFound, "complaint %s not found", strings.TrimSpace(id))
	}
	if err != nil {
		return complaint.Complaint{}, err
	}
	for _, s := range steps {
		if err := logStep(ctx, tx, c, s); err != nil {
			return complaint.Complaint{}, err
		}
	}
	return c, nil
}

// Acknowledge says that the owning department took a complaint.
type Acknowledge struct {
	Tenant      string
	ComplaintID string
	By          string
}

// AcknowledgeComplaint: the owning department took the complaint; see AcknowledgeComplaintTx.
func (a *App) AcknowledgeComplaint(ctx context.Context, in Acknowledge) (complaint.Complaint, error) {
	return inTx(ctx, a, func(tx pgx.Tx) (complaint.Complaint, error) { return a.AcknowledgeComplaintTx(ctx, tx, in) })
}

// AcknowledgeComplaintTx acknowledges an open complaint within the
// caller's transaction and writes ComplaintAcknowledged.
func (a *App) AcknowledgeComplaintTx(ctx context.Context, tx pgx.Tx, in Acknowledge) (complaint.Complaint, error) {
	var l invalid.List
	required(&l, [2]string{"complaint_id", in.ComplaintID}, [2]string{"by", in.By})
	if err := l.Err(); err != nil {
		return complaint.Complaint{}, err
	}
	by := strings.TrimSpace(in.By)
	return a.change(ctx, tx, in.Tenant, in.ComplaintID, func(c *complaint.Complaint, now time.Time) ([]complaint.Step, error) {
		s, err := c.Acknowledge(by, now)
		return []complaint.Step{s}, err
	})
}

// Resolve says what caused a complaint and what was done about it.
type Resolve struct {
	Tenant      string
	ComplaintID string
	By          string
	RootCause   string
	Action      string
	// WrittenReply (the text) or WrittenReplyRef (the stored letter) is
	// required for a complaint that needs no follow-up (seed 000).
	WrittenReply    string
	WrittenReplyRef string
	// OccurredAt is when it was resolved, as the department states it;
	// zero: now (issue 16).
	OccurredAt time.Time
}

// ResolveComplaint records a resolution; see ResolveComplaintTx.
func (a *App) ResolveComplaint(ctx context.Context, in Resolve) (complaint.Complaint, error) {
	return inTx(ctx, a, func(tx pgx.Tx) (complaint.Complaint, error) { return a.ResolveComplaintTx(ctx, tx, in) })
}

// ResolveComplaintTx records the root cause and the action within the
// caller's transaction and writes ComplaintResolved, on which the
// scheduler plans a confirmation visit. A complaint that needs no
// follow-up (anonymous, or only a written reply was requested, seed 000)
// needs the written reply, which is attached to it; its ComplaintResolved
// says no_follow_up and it is closed at once with outcome written_reply
// (ComplaintClosed). The steps take the time the resolution happened
// (OccurredAt): at most record.ClockSkew in the future and not before the
// complaint's last step; the confirmation visit is planned from it.
func (a *App) ResolveComplaintTx(ctx context.Context, tx pgx.Tx, in Resolve) (complaint.Complaint, error) {
	var l invalid.List
	required(&l, [2]string{"complaint_id", in.ComplaintID}, [2]string{"by", in.By},
		[2]string{"root_cause", in.RootCause}, [2]string{"action", in.Action})
	r := complaint.Resolution{By: strings.TrimSpace(in.By), RootCause: strings.TrimSpace(in.RootCause), Action: strings.TrimSpace(in.Action),
		WrittenReply: strings.TrimSpace(in.WrittenReply), WrittenReplyRef: strings.TrimSpace(in.WrittenReplyRef)}
	if len([]rune(r.WrittenReply)) > complaint.MaxWrittenReply {
		l.Add("written_reply", fmt.Sprintf("at most %d characters; attach a longer letter by written_reply_ref", complaint.MaxWrittenReply))
	}
	record.CheckFuture(&l, "occurred_at", in.OccurredAt, a.now())
	if err := l.Err(); err != nil {
		return complaint.Complaint{}, err
	}
	return a.change(ctx, tx, in.Tenant, in.ComplaintID, func(c *complaint.Complaint, now time.Time) ([]complaint.Step, error) {
		at := now
		if !in.OccurredAt.IsZero() {
			last, err := store.LastStepAt(ctx, tx, c.ID)
			if err != nil {
				return nil, err
			}
			var l invalid.List
			record.CheckNotBefore(&l, "occurred_at", in.OccurredAt, last, "the last step of complaint "+c.ID)
			if err := l.Err(); err != nil {
				return nil, err
			}
			at = in.OccurredAt.UTC()
		}
		resolved, err := c.Resolve(r, at)
		if err != nil || !c.NoFollowUp() {
			return []complaint.Step{resolved}, err
		}
		closed, err := c.CloseWithWrittenReply(r.By, at)
		return []complaint.Step{resolved, closed}, err
	})
}

// Reopen sends a resolved complaint back, one level up, for a reason.
type Reopen struct {
	Tenant      string
	ComplaintID string
	By          string
	Reason      string
}

// ReopenComplaint reopens a resolved complaint; see ReopenComplaintTx.
func (a *App) ReopenComplaint(ctx context.Context, in Reopen) (complaint.Complaint, error) {
	return inTx(ctx, a, func(tx pgx.Tx) (complaint.Complaint, error) { return a.ReopenComplaintTx(ctx, tx, in) })
}

// ReopenComplaintTx reopens a resolved complaint one level up within the
// caller's transaction and writes ComplaintReopened and ComplaintEscalated.
func (a *App) ReopenComplaintTx(ctx context.Context, tx pgx.Tx, in Reopen) (complaint.Complaint, error) {
	var l invalid.List
	required(&l, [2]string{"complaint_id", in.ComplaintID}, [2]string{"by", in.By}, [2]string{"reason", in.Reason})
	if err := l.Err(); err != nil {
		return complaint.Complaint{}, err
	}
	by, reason := strings.TrimSpace(in.By), strings.TrimSpace(in.Reason)
	return a.change(ctx, tx, in.Tenant, in.ComplaintID, func(c *complaint.Complaint, now time.Time) ([]complaint.Step, error) {
		s, err := c.Reopen(by, reason, now)
		return []complaint.Step{s}, err
	})
}

// Close is a manager ending a complaint's loop with a reason.
type Close struct {
	Tenant      string
	ComplaintID string
	By          string
	Reason      string
}

// CloseComplaint closes a complaint; see CloseComplaintTx.
func (a *App) CloseComplaint(ctx context.Context, in Close) (complaint.Complaint, error) {
	return inTx(ctx, a, func(tx pgx.Tx) (complaint.Complaint, error) { return a.CloseComplaintTx(ctx, tx, in) })
}

// CloseComplaintTx: a manager ends the loop with a reason, within the
// caller's transaction, and ComplaintClosed (closed_by_manager) is written.
func (a *App) CloseComplaintTx(ctx context.Context, tx pgx.Tx, in Close) (complaint.Complaint, error) {
	var l invalid.List
	required(&l, [2]string{"complaint_id", in.ComplaintID}, [2]string{"by", in.By}, [2]string{"reason", in.Reason})
	if err := l.Err(); err != nil {
		return complaint.Complaint{}, err
	}
	by, reason := strings.TrimSpace(in.By), strings.TrimSpace(in.Reason)
	return a.change(ctx, tx, in.Tenant, in.ComplaintID, func(c *complaint.Complaint, now time.Time) ([]complaint.Step, error) {
		s, err := c.Close(by, complaint.OutcomeClosedByManager, reason, now)
		return []complaint.Step{s}, err
	})
}

// OpenLetter is one letter answering the same issue of many customers.
type OpenLetter struct {
	Tenant       string
	Title        string
	Body         string
	By           string
	ComplaintIDs []string
}

// CreateOpenLetter files an open letter; see CreateOpenLetterTx.
func (a *App) CreateOpenLetter(ctx context.Context, in OpenLetter) (complaint.Letter, error) {
	return inTx(ctx, a, func(tx pgx.Tx) (complaint.Letter, error) { return a.CreateOpenLetterTx(ctx, tx, in) })
}

// CreateOpenLetterTx files one letter answering the same issue of many
// customers within the caller's transaction and attaches it to each of
// their complaints, with a step in each history (seed 000). Every
// complaint must be the tenant's.
func (a *App) CreateOpenLetterTx(ctx context.Context, tx pgx.Tx, in OpenLetter) (complaint.Letter, error) {
	letter, err := complaint.NewLetter(newID(), tenant.Or(in.Tenant), in.Title, in.Body, in.By, in.ComplaintIDs, a.now())
	if err != nil {
		return complaint.Letter{}, err
	}
	err = store.InsertOpenLetter(ctx, tx, letter)
	if errors.Is(err, store.ErrNotFound) {
		return complaint.Letter{}, refuse(ErrNotFound, "one of the complaints not found")
	}
	if err != nil {
		return complaint.Letter{}, err
	}
	for _, id := range letter.ComplaintIDs {
		// No event: a letter changes nothing of the complaint's loop.
		if err := store.AddStep(ctx, tx, id, letter.Step()); err != nil {
			return complaint.Letter{}, err
		}
	}
	return letter, nil
}
