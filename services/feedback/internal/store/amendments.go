package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/feedback/internal/record"
)

// StoredAmendment is an amendment with the correction it makes.
type StoredAmendment struct {
	Amendment  *feedbackv1.Amendment
	Correction record.Correction
}

// AddAmendment stores an amendment of a record within tx. Amendments, like
// records, are append-only.
func AddAmendment(ctx context.Context, tx pgx.Tx, tenant string, a *feedbackv1.Amendment, c record.Correction) error {
	answers, err := jsonList(c.Answers)
	if err != nil {
		return err
	}
	attachments, err := jsonList(c.Attachments)
	if err != nil {
		return err
	}
	changes, err := jsonList(a.Changes)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO record_amendments (id, tenant_id, record_id, by_whom, reason, answers, comments, signature_ref, attachments, changes, at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		a.Id, tenant, a.RecordId, a.By, a.Reason, answers, c.Comments, c.SignatureRef, attachments, changes, a.At.AsTime()); err != nil {
		return fmt.Errorf("store: insert amendment of record %s: %w", a.RecordId, err)
	}
	return nil
}

// Amendments returns a record's amendments, oldest first.
func Amendments(ctx context.Context, q Querier, recordID string) ([]StoredAmendment, error) {
	rows, err := q.Query(ctx, `SELECT id, by_whom, reason, answers, comments, signature_ref, attachments, changes, at
FROM record_amendments WHERE record_id = $1 ORDER BY seq`, recordID)
	if err != nil {
		return nil, fmt.Errorf("store: amendments of record %s: %w", recordID, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (StoredAmendment, error) {
		a := &feedbackv1.Amendment{RecordId: recordID}
		var c record.Correction
		var answers, attachments, changes []byte
		var at time.Time
		if err := r.Scan(&a.Id, &a.By, &a.Reason, &answers, &c.Comments, &c.SignatureRef, &attachments, &changes, &at); err != nil {
			return StoredAmendment{}, err
		}
		a.At = timestamppb.New(at)
		var err error
		if c.Answers, err = fromJSONList[*typesv1.Answer](answers); err != nil {
			return StoredAmendment{}, err
		}
		if c.Attachments, err = fromJSONList[*feedbackv1.Attachment](attachments); err != nil {
			return StoredAmendment{}, err
		}
		if a.Changes, err = fromJSONList[*feedbackv1.FieldChange](changes); err != nil {
			return StoredAmendment{}, err
		}
		return StoredAmendment{Amendment: a, Correction: c}, nil
	})
}

// Current returns rec with every amendment applied, in order.
func Current(rec *feedbackv1.VisitRecord, list []StoredAmendment) *feedbackv1.VisitRecord {
	cur := rec
	for _, a := range list {
		cur = record.Apply(cur, a.Correction)
	}
	return cur
}

// AddSignOff stores a leader's review of a record within tx.
func AddSignOff(ctx context.Context, tx pgx.Tx, tenant string, s *feedbackv1.SignOff) error {
	if _, err := tx.Exec(ctx, `INSERT INTO record_sign_offs (tenant_id, record_id, leader_id, approved, note, at) VALUES ($1, $2, $3, $4, $5, $6)`,
		tenant, s.RecordId, s.LeaderId, s.Approved, s.Note, s.At.AsTime()); err != nil {
		return fmt.Errorf("store: insert sign-off of record %s: %w", s.RecordId, err)
	}
	return nil
}

// SignOffs returns a record's sign-offs, oldest first.
func SignOffs(ctx context.Context, q Querier, recordID string) ([]*feedbackv1.SignOff, error) {
	rows, err := q.Query(ctx, `SELECT leader_id, approved, note, at FROM record_sign_offs WHERE record_id = $1 ORDER BY seq`, recordID)
	if err != nil {
		return nil, fmt.Errorf("store: sign-offs of record %s: %w", recordID, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*feedbackv1.SignOff, error) {
		s := &feedbackv1.SignOff{RecordId: recordID}
		var at time.Time
		err := r.Scan(&s.LeaderId, &s.Approved, &s.Note, &at)
		s.At = timestamppb.New(at)
		return s, err
	})
}

// AgentRecordIDs returns the ids of the records an agent logged in [start, end).
func AgentRecordIDs(ctx context.Context, q Querier, tenant, agent string, start, end time.Time) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT id FROM visit_records WHERE tenant_id = $1 AND agent_id = $2 AND logged_at >= $3 AND logged_at < $4`,
		tenant, agent, start, end)
	if err != nil {
		return nil, fmt.Errorf("store: records of agent %s: %w", agent, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// ListRecords lists a tenant's records newest first after the cursor
// (logged_at, id); agent and unsignedOnly filter when set.
func (s *Store) ListRecords(ctx context.Context, tenant, agent string, unsignedOnly bool, limit int, afterTime time.Time, afterID string) ([]*feedbackv1.VisitRecord, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+recordColumns+` FROM visit_records r
WHERE r.tenant_id = $1 AND ($2 = '' OR r.agent_id = $2)
  AND (NOT $3 OR NOT EXISTS (SELECT 1 FROM record_sign_offs s WHERE s.record_id = r.id))
  AND ($5 = '' OR (r.logged_at, r.id) < ($4, $5))
ORDER BY r.logged_at DESC, r.id DESC LIMIT $6`, tenant, agent, unsignedOnly, afterTime, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list records: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*feedbackv1.VisitRecord, error) { return scanRecord(r) })
}
