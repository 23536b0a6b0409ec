package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/record"
	"github.com/huifang/huifang/services/feedback/internal/store"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

// LogVisit records a completed follow-up in a transaction of its own; see LogVisitTx.
func (a *App) LogVisit(ctx context.Context, d record.Draft) (record.Record, error) {
	return inTx(ctx, a, func(tx pgx.Tx) (record.Record, error) { return a.LogVisitTx(ctx, tx, d) })
}

// LogVisitTx records a completed follow-up within the caller's
// transaction: it checks the draft, its answers against the questionnaire
// the visit's policy names and the agent against the visit's assignment,
// stores the record, opens the complaints it raises (attaching a problem
// the customer raised already to its open complaint), asks for the
// follow-ups it promised and settles the complaint a confirmation visit
// confirms; it writes VisitLogged, ComplaintEscalated, FollowUpRequested,
// ComplaintClosed or ComplaintReopened. An unknown visit is ErrNotFound
// (feedback learns visits from VisitDue), one logged already ErrAlreadyLogged.
func (a *App) LogVisitTx(ctx context.Context, tx pgx.Tx, d record.Draft) (record.Record, error) {
	now := a.now()
	record.Normalize(&d)
	if err := record.Validate(d, now); err != nil {
		return record.Record{}, err
	}
	v, err := store.GetVisit(ctx, tx, d.TenantID, d.VisitID)
	if errors.Is(err, store.ErrNotFound) {
		return record.Record{}, refuse(ErrNotFound,
			"visit %q is unknown: feedback learns visits from VisitDue events; retry once the visit has fallen due", d.VisitID)
	}
	if err != nil {
		return record.Record{}, err
	}
	// Taken before any complaint is held, so every LogVisit locks in one
	// order; a blank customer has nothing to match on, and takes no lock.
	if v.CustomerID != "" {
		if err := store.LockCustomer(ctx, tx, d.TenantID, v.CustomerID); err != nil {
			return record.Record{}, err
		}
	}
	q, err := questionnaireOf(ctx, tx, d, v)
	if err != nil {
		return record.Record{}, err
	}
	confirmed, err := confirmation(ctx, tx, d, v)
	if err != nil {
		return record.Record{}, err
	}
	var confirms *record.Confirmed
	if confirmed != nil {
		last, err := store.LastStepAt(ctx, tx, confirmed.ID)
		if err != nil {
			return record.Record{}, err
		}
		confirms = &record.Confirmed{ComplaintID: confirmed.ID, Severity: confirmed.Severity, LastStepAt: last}
	}
	answers, err := record.Complete(d, v, q, confirms)
	if err != nil {
		return record.Record{}, err
	}
	rec := record.New(newID(), d, v, answers, q, now)
	if confirmed != nil {
		rec.ConfirmedComplaintID = confirmed.ID
	}

	opened := complaint.Open(rec, v, a.Rules)
	matched := make([]store.Match, len(opened))
	for i := range opened {
		o := &opened[i]
		// One problem raised again while its complaint is open is recorded once (seeds 000, 002).
		if o.Matchable() {
			m, found, err := store.FindOpenComplaint(ctx, tx, rec.TenantID, o.Complaint.CustomerID, o.Complaint.Category, o.Complaint.Key)
			if err != nil {
				return record.Record{}, err
			}
			if found {
				o.Attach(m.ID)
				matched[i] = m
				rec.AttachedComplaintIDs = append(rec.AttachedComplaintIDs, m.ID)
			}
		}
		if !o.Attached {
			o.Complaint.ID = newID()
		}
		rec.ComplaintIDs = append(rec.ComplaintIDs, o.Complaint.ID)
	}

	err = store.InsertRecord(ctx, tx, rec)
	if errors.Is(err, store.ErrConflict) {
		return record.Record{}, refuse(ErrAlreadyLogged,
			"visit %q already has its record; records are append-only: correct it with AmendVisitRecord (seed 004)", d.VisitID)
	}
	if err != nil {
		return record.Record{}, err
	}
	if err := publish(ctx, tx, stream.SubjectVisitLogged, visitLogged(rec, v, q)); err != nil {
		return record.Record{}, err
	}
	for i, o := range opened {
		if o.Attached {
			// No event: the complaint was handed to its department already.
			if err := store.AddStep(ctx, tx, o.Complaint.ID, complaint.RaisedAgain(rec, o.Complaint.Description, matched[i].Level)); err != nil {
				return record.Record{}, err
			}
		} else {
			if err := store.InsertComplaint(ctx, tx, rec.ID, o.Complaint); err != nil {
				return record.Record{}, err
			}
			if err := logStep(ctx, tx, o.Complaint, o.Complaint.OpenedStep()); err != nil {
				return record.Record{}, err
			}
		}
		if err := store.LinkComplaint(ctx, tx, rec.ID, o.Complaint.ID, i, o.Attached); err != nil {
			return record.Record{}, err
		}
	}
	for _, p := range rec.PromisedReplies {
		if err := publish(ctx, tx, stream.SubjectFollowUpRequested, followUpRequested(rec, v, p)); err != nil {
			return record.Record{}, err
		}
	}
	if confirmed != nil {
		// The customer confirmed (or not) when the visit happened.
		step, err := confirmed.Confirm(rec, rec.OccurredAt)
		if err != nil {
			return record.Record{}, err
		}
		if err := store.SaveComplaint(ctx, tx, *confirmed); err != nil {
			return record.Record{}, err
		}
		if err := logStep(ctx, tx, *confirmed, step); err != nil {
			return record.Record{}, err
		}
	}
	return rec, nil
}

// questionnaireOf returns the questionnaire version the draft's answers
// are checked against: the one the visit's policy names (the version the
// form showed, when given), or nil when the policy names none: then
// answers are free aspects rated on the 3-level scale.
func questionnaireOf(ctx context.Context, tx pgx.Tx, d record.Draft, v visit.Visit) (*questionnaire.Questionnaire, error) {
	id, version, found, err := store.PolicyQuestionnaire(ctx, tx, d.TenantID, v.PolicyID)
	switch {
	case err != nil:
		return nil, err
	case !found && d.QuestionnaireVersion != 0:
		return nil, invalid.New("questionnaire_version", fmt.Sprintf("the visit's policy %q names no questionnaire; leave it 0", v.PolicyID))
	case !found:
		return nil, nil
	}
	q, err := store.GetQuestionnaire(ctx, tx, d.TenantID, id, version)
	if err != nil {
		// Not ErrNotFound for the caller: the policy's entry is broken, not the request.
		return nil, fmt.Errorf("policy %s names questionnaire %s v%d: %v", v.PolicyID, id, version, err)
	}
	if d.QuestionnaireVersion == 0 {
		return &q, nil
	}
	shown, err := store.GetQuestionnaire(ctx, tx, d.TenantID, q.ID, d.QuestionnaireVersion)
	if errors.Is(err, store.ErrNotFound) {
		return nil, invalid.New("questionnaire_version", fmt.Sprintf("questionnaire %s has no version %d", q.ID, d.QuestionnaireVersion))
	}
	if err != nil {
		return nil, err
	}
	return &shown, nil
}

// confirmation returns the complaint the visit confirms, held for update,
// or nil: the one the draft names, which must exist and be resolved, else
// the one the visit names (VisitDue), while it is resolved.
func confirmation(ctx context.Context, tx pgx.Tx, d record.Draft, v visit.Visit) (*complaint.Complaint, error) {
	id, named := d.ComplaintID, d.ComplaintID != ""
	if !named {
		id = v.ComplaintID
	}
	if id == "" {
		return nil, nil
	}
	c, err := store.LockComplaint(ctx, tx, d.TenantID, id)
	switch {
	case errors.Is(err, store.ErrNotFound) && named:
		return nil, invalid.New("complaint_id", fmt.Sprintf("no complaint %q in tenant %s", id, d.TenantID))
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	if ok, err := c.Confirmable(named); !ok {
		return nil, err
	}
	return &c, nil
}
