package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/enum"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/record"
	"github.com/huifang/huifang/services/feedback/internal/store"
)

// RecordView is a record as logged, its amendments, its current form (the
// record with every amendment applied) and its sign-offs.
type RecordView struct {
	Record     record.Record
	Amendments []record.Amendment
	Current    record.Record
	SignOffs   []record.SignOff
}

// GetRecord returns a record by its id or its visit's id.
func (a *App) GetRecord(ctx context.Context, tenantID, id string) (RecordView, error) {
	id = strings.TrimSpace(id) // not blank: feedback.proto's rule
	rec, err := store.GetRecord(ctx, a.DB, tenant.Or(tenantID), id)
	if errors.Is(err, store.ErrNotFound) {
		return RecordView{}, refuse(ErrNotFound, "no record with id or visit id %q", id)
	}
	if err != nil {
		return RecordView{}, err
	}
	if err := recordInScope(ctx, rec); err != nil {
		return RecordView{}, err
	}
	amendments, err := store.Amendments(ctx, a.DB, rec.ID)
	if err != nil {
		return RecordView{}, err
	}
	signOffs, err := store.SignOffs(ctx, a.DB, rec.ID)
	if err != nil {
		return RecordView{}, err
	}
	return RecordView{Record: rec, Amendments: amendments, Current: record.Current(rec, amendments), SignOffs: signOffs}, nil
}

// RecordList selects records for ListRecords.
type RecordList struct {
	Tenant string
	// Agent keeps one agent's records; UnsignedOnly those no leader signed off yet.
	Agent        string
	UnsignedOnly bool
	// NoShowOnly keeps the no-shows; NoShowReason those of one reason.
	NoShowOnly   bool
	NoShowReason typesv1.NoShowReason
	// After is the cursor: the records logged before (AfterTime, AfterID),
	// newest first; an empty AfterID starts at the newest.
	AfterTime time.Time
	AfterID   string
	Limit     int
}

// ListRecords lists records newest first.
func (a *App) ListRecords(ctx context.Context, in RecordList) ([]record.Record, error) {
	// no_show_reason is a known one: feedback.proto's rule.
	return store.ListRecords(ctx, a.DB, store.RecordFilter{Tenant: tenant.Or(in.Tenant), Agent: strings.TrimSpace(in.Agent),
		UnsignedOnly: in.UnsignedOnly, AfterTime: in.AfterTime, AfterID: in.AfterID, Limit: in.Limit,
		NoShowOnly: in.NoShowOnly || in.NoShowReason != typesv1.NoShowReason_NO_SHOW_REASON_UNSPECIFIED, NoShowReason: enum.Name(in.NoShowReason)})
}

// Amended is an amendment and the record's current form after it.
type Amended struct {
	Amendment record.Amendment
	Current   record.Record
}

// AmendRecord corrects a record; see AmendRecordTx.
func (a *App) AmendRecord(ctx context.Context, d record.AmendDraft) (Amended, error) {
	return inTx(ctx, a, func(tx pgx.Tx) (Amended, error) { return a.AmendRecordTx(ctx, tx, d) })
}

// AmendRecordTx appends a correction to a record within the caller's
// transaction; the record as logged never changes (seed 004). Replacement
// answers are checked against the record's questionnaire version.
func (a *App) AmendRecordTx(ctx context.Context, tx pgx.Tx, d record.AmendDraft) (Amended, error) {
	now := a.now()
	d.TenantID = tenant.Or(d.TenantID)
	record.NormalizeAmend(&d)
	if err := record.ValidateAmend(d); err != nil {
		return Amended{}, err
	}
	rec, err := store.LockRecord(ctx, tx, d.TenantID, d.RecordID)
	if errors.Is(err, store.ErrNotFound) {
		return Amended{}, refuse(ErrNotFound, "record %s not found", d.RecordID)
	}
	if err != nil {
		return Amended{}, err
	}
	if err := recordInScope(ctx, rec); err != nil {
		return Amended{}, err
	}
	list, err := store.Amendments(ctx, tx, rec.ID)
	if err != nil {
		return Amended{}, err
	}
	var q *questionnaire.Questionnaire
	if rec.QuestionnaireID != "" {
		qn, err := store.GetQuestionnaire(ctx, tx, d.TenantID, rec.QuestionnaireID, rec.QuestionnaireVersion)
		if err != nil {
			return Amended{}, fmt.Errorf("questionnaire of record %s: %v", rec.ID, err)
		}
		q = &qn
	}
	current := record.Current(rec, list)
	am, err := record.Amend(newID(), current, q, d, now)
	if err != nil {
		return Amended{}, err
	}
	if err := store.AddAmendment(ctx, tx, d.TenantID, am); err != nil {
		return Amended{}, err
	}
	// The fields changed, not their values nor the reason: answers and
	// comments may hold what the customer said.
	fields := make([]string, len(am.Changes))
	for i, c := range am.Changes {
		fields[i] = c.Field
	}
	if err := a.auditTx(ctx, tx, d.TenantID, "record.amend", audit.Target{Kind: "record", ID: rec.ID},
		audit.Detail{"amendment_id": am.ID, "visit_id": rec.VisitID, "by": am.By, "fields": fields}); err != nil {
		return Amended{}, err
	}
	return Amended{Amendment: am, Current: record.Apply(current, am.Correction)}, nil
}

// SignOff is a leader's review of a record.
type SignOff struct {
	Tenant string
	// RecordID is the record's id or its visit's id.
	RecordID string
	LeaderID string
	Approved bool
	// Note says what is wrong; required when not approved.
	Note string
}

// SignOffRecord stores a leader's review of a record; see SignOffRecordTx.
func (a *App) SignOffRecord(ctx context.Context, in SignOff) (record.SignOff, error) {
	return inTx(ctx, a, func(tx pgx.Tx) (record.SignOff, error) { return a.SignOffRecordTx(ctx, tx, in) })
}

// SignOffRecordTx stores a leader's review of a record within the
// caller's transaction (seeds 000, 004: the supervisor reviews and signs).
func (a *App) SignOffRecordTx(ctx context.Context, tx pgx.Tx, in SignOff) (record.SignOff, error) {
	tenantID := tenant.Or(in.Tenant)
	s, err := record.NewSignOff(in.RecordID, in.LeaderID, in.Approved, in.Note, a.now())
	if err != nil {
		return record.SignOff{}, err
	}
	rec, err := store.LockRecord(ctx, tx, tenantID, s.RecordID)
	if errors.Is(err, store.ErrNotFound) {
		return record.SignOff{}, refuse(ErrNotFound, "record %s not found", s.RecordID)
	}
	if err != nil {
		return record.SignOff{}, err
	}
	// A leader signs the records of the org units its token names.
	if p, ok := auth.Restricted(ctx, auth.Director); ok && !p.InUnits(rec.OrgUnit) {
		return record.SignOff{}, auth.Deny("record_id", "the record belongs to an org unit the caller does not lead")
	}
	s.RecordID = rec.ID
	if err := store.AddSignOff(ctx, tx, tenantID, s); err != nil {
		return record.SignOff{}, err
	}
	if err := a.auditTx(ctx, tx, tenantID, "record.sign_off", audit.Target{Kind: "record", ID: rec.ID},
		audit.Detail{"visit_id": rec.VisitID, "leader_id": s.LeaderID, "approved": s.Approved}); err != nil {
		return record.SignOff{}, err
	}
	return s, nil
}
