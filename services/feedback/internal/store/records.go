package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/enum"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/feedback/internal/record"
	"github.com/huifang/huifang/services/feedback/internal/wire"
)

// InsertRecord stores a new record (not its complaint links: LinkComplaint).
// Records are append-only: a trigger refuses UPDATE and DELETE. A visit
// that has a record already gives ErrConflict.
func InsertRecord(ctx context.Context, q postgres.Querier, rec record.Record) error {
	answers, err := jsonList(wire.AnswersToProto(rec.Answers))
	if err != nil {
		return err
	}
	problems, err := jsonList(wire.ProblemsToProto(rec.Problems))
	if err != nil {
		return err
	}
	attachments, err := jsonList(wire.AttachmentsToProto(rec.Attachments))
	if err != nil {
		return err
	}
	promised, err := jsonList(wire.PromisedRepliesToProto(rec.PromisedReplies))
	if err != nil {
		return err
	}
	var noShowReason, noShowNote string
	if rec.NoShow != nil {
		noShowReason, noShowNote = enum.Name(rec.NoShow.Reason), rec.NoShow.Note
	}
	if _, err := q.Exec(ctx, `INSERT INTO visit_records (id, tenant_id, visit_id, agent_id, channel, answers, problems, comments, started_at, ended_at, logged_at, customer_id, org_unit,
  questionnaire_id, questionnaire_version, signature_ref, attachments, promised_replies, confirmed_complaint_id, occurred_at, no_show_reason, no_show_note)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)`,
		rec.ID, rec.TenantID, rec.VisitID, rec.AgentID, rec.Channel.String(), answers, problems, rec.Comments,
		nullTime(rec.StartedAt), nullTime(rec.EndedAt), rec.LoggedAt, rec.CustomerID, rec.OrgUnit,
		rec.QuestionnaireID, rec.QuestionnaireVersion, rec.SignatureRef, attachments, promised, rec.ConfirmedComplaintID, nullTime(rec.OccurredAt), noShowReason, noShowNote); err != nil {
		return fmt.Errorf("store: insert record of visit %s: %w", rec.VisitID, translate(err))
	}
	return nil
}

// LinkComplaint records that the problem at position of a record went to
// a complaint, attached when the complaint was open already.
func LinkComplaint(ctx context.Context, q postgres.Querier, recordID, complaintID string, position int, attached bool) error {
	if _, err := q.Exec(ctx, `INSERT INTO record_complaints (record_id, complaint_id, position, attached) VALUES ($1, $2, $3, $4)`,
		recordID, complaintID, position, attached); err != nil {
		return fmt.Errorf("store: link record %s to complaint %s: %w", recordID, complaintID, translate(err))
	}
	return nil
}

// recordColumns are the columns scanRecord reads, from visit_records r.
const recordColumns = `r.id, r.tenant_id, r.visit_id, r.agent_id, r.channel, r.answers, r.problems, r.comments, r.started_at, r.ended_at, r.logged_at,
  r.customer_id, r.org_unit, r.questionnaire_id, r.questionnaire_version, r.signature_ref, r.attachments, r.promised_replies, r.confirmed_complaint_id,
  COALESCE(r.occurred_at, r.logged_at), r.no_show_reason, r.no_show_note,
  ARRAY(SELECT rc.complaint_id FROM record_complaints rc WHERE rc.record_id = r.id ORDER BY rc.position),
  ARRAY(SELECT rc.complaint_id FROM record_complaints rc WHERE rc.record_id = r.id AND rc.attached ORDER BY rc.position)`

func scanRecord(row pgx.Row) (record.Record, error) {
	var rec record.Record
	var channel string
	var answers, problems, attachments, promised []byte
	var started, ended *time.Time
	var noShowReason, noShowNote string
	if err := row.Scan(&rec.ID, &rec.TenantID, &rec.VisitID, &rec.AgentID, &channel, &answers, &problems, &rec.Comments,
		&started, &ended, &rec.LoggedAt, &rec.CustomerID, &rec.OrgUnit, &rec.QuestionnaireID, &rec.QuestionnaireVersion,
		&rec.SignatureRef, &attachments, &promised, &rec.ConfirmedComplaintID, &rec.OccurredAt, &noShowReason, &noShowNote, &rec.ComplaintIDs, &rec.AttachedComplaintIDs); err != nil {
		return record.Record{}, err
	}
	if reason, ok := enum.Parse[typesv1.NoShowReason](noShowReason); ok {
		rec.NoShow = &record.NoShow{Reason: reason, Note: noShowNote}
	}
	// The column keeps the channel's full name (CHANNEL_PHONE).
	rec.Channel = typesv1.Channel(typesv1.Channel_value[channel])
	rec.StartedAt, rec.EndedAt, rec.LoggedAt, rec.OccurredAt = timeOf(started), timeOf(ended), rec.LoggedAt.UTC(), rec.OccurredAt.UTC()
	a, err := fromJSONList[*typesv1.Answer](answers)
	if err != nil {
		return record.Record{}, fmt.Errorf("store: answers of record %s: %w", rec.ID, err)
	}
	p, err := fromJSONList[*typesv1.Problem](problems)
	if err != nil {
		return record.Record{}, fmt.Errorf("store: problems of record %s: %w", rec.ID, err)
	}
	at, err := fromJSONList[*feedbackv1.Attachment](attachments)
	if err != nil {
		return record.Record{}, fmt.Errorf("store: attachments of record %s: %w", rec.ID, err)
	}
	pr, err := fromJSONList[*feedbackv1.PromisedReply](promised)
	if err != nil {
		return record.Record{}, fmt.Errorf("store: promised replies of record %s: %w", rec.ID, err)
	}
	rec.Answers, rec.Problems = wire.AnswersFromProto(a), wire.ProblemsFromProto(p)
	rec.Attachments, rec.PromisedReplies = wire.AttachmentsFromProto(at), wire.PromisedRepliesFromProto(pr)
	if len(rec.ComplaintIDs) == 0 {
		rec.ComplaintIDs = nil
	}
	if len(rec.AttachedComplaintIDs) == 0 {
		rec.AttachedComplaintIDs = nil
	}
	return rec, nil
}

// recordByID selects a record by its id or its visit's id, the record id first.
const recordByID = `SELECT ` + recordColumns + ` FROM visit_records r WHERE r.tenant_id = $1 AND (r.id = $2 OR r.visit_id = $2)
ORDER BY r.id = $2 DESC LIMIT 1`

// GetRecord returns a record as logged by its id or its visit's id, with
// the ids of the complaints its problems went to, or ErrNotFound.
func GetRecord(ctx context.Context, q postgres.Querier, tenant, id string) (record.Record, error) {
	rec, err := scanRecord(q.QueryRow(ctx, recordByID, tenant, id))
	if err != nil {
		return record.Record{}, fmt.Errorf("store: get record %s: %w", id, translate(err))
	}
	return rec, nil
}

// LockRecord is GetRecord holding the record until tx ends, so that the
// amendments and sign-offs of one record are made one after another.
func LockRecord(ctx context.Context, tx pgx.Tx, tenant, id string) (record.Record, error) {
	rec, err := scanRecord(tx.QueryRow(ctx, recordByID+` FOR UPDATE OF r`, tenant, id))
	if err != nil {
		return record.Record{}, fmt.Errorf("store: lock record %s: %w", id, translate(err))
	}
	return rec, nil
}

// RecordFilter selects records for ListRecords.
type RecordFilter struct {
	Tenant string
	// Agent, when set, keeps the records of one agent.
	Agent string
	// UnsignedOnly keeps the records no leader signed off yet.
	UnsignedOnly bool
	// NoShowOnly keeps the records of a no-show; NoShowReason, when set
	// (a short name), those of one reason.
	NoShowOnly   bool
	NoShowReason string
	// AfterTime and AfterID are the cursor (logged_at, id) of the last
	// record of the previous page; an empty AfterID starts at the newest.
	AfterTime time.Time
	AfterID   string
	Limit     int
}

// ListRecords lists records newest first.
func ListRecords(ctx context.Context, q postgres.Querier, f RecordFilter) ([]record.Record, error) {
	rows, err := q.Query(ctx, `SELECT `+recordColumns+` FROM visit_records r
WHERE r.tenant_id = $1 AND ($2 = '' OR r.agent_id = $2)
  AND (NOT $3 OR NOT EXISTS (SELECT 1 FROM record_sign_offs s WHERE s.record_id = r.id))
  AND ($5 = '' OR (r.logged_at, r.id) < ($4, $5))
  AND (NOT $7 OR r.no_show_reason <> '') AND ($8 = '' OR r.no_show_reason = $8)
ORDER BY r.logged_at DESC, r.id DESC LIMIT $6`, f.Tenant, f.Agent, f.UnsignedOnly, f.AfterTime, f.AfterID, f.Limit, f.NoShowOnly, f.NoShowReason)
	if err != nil {
		return nil, fmt.Errorf("store: list records: %w", translate(err))
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (record.Record, error) { return scanRecord(r) })
	if err != nil {
		return nil, fmt.Errorf("store: list records: %w", translate(err))
	}
	return list, nil
}

// AgentRecordIDs returns the ids of the records an agent logged in [start, end).
func AgentRecordIDs(ctx context.Context, q postgres.Querier, tenant, agent string, start, end time.Time) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT id FROM visit_records WHERE tenant_id = $1 AND agent_id = $2 AND logged_at >= $3 AND logged_at < $4`,
		tenant, agent, start, end)
	if err != nil {
		return nil, fmt.Errorf("store: records of agent %s: %w", agent, translate(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: records of agent %s: %w", agent, translate(err))
	}
	return ids, nil
}

// AddAmendment stores an amendment of a record. Amendments, like records,
// are append-only.
func AddAmendment(ctx context.Context, q postgres.Querier, tenant string, a record.Amendment) error {
	c := a.Correction
	answers, err := jsonList(wire.AnswersToProto(c.Answers))
	if err != nil {
		return err
	}
	attachments, err := jsonList(wire.AttachmentsToProto(c.Attachments))
	if err != nil {
		return err
	}
	changes, err := jsonList(wire.FieldChangesToProto(a.Changes))
	if err != nil {
		return err
	}
	if _, err := q.Exec(ctx, `INSERT INTO record_amendments (id, tenant_id, record_id, by_whom, reason, answers, comments, signature_ref, attachments, changes, at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		a.ID, tenant, a.RecordID, a.By, a.Reason, answers, c.Comments, c.SignatureRef, attachments, changes, a.At); err != nil {
		return fmt.Errorf("store: insert amendment of record %s: %w", a.RecordID, translate(err))
	}
	return nil
}

// Amendments returns a record's amendments, oldest first.
func Amendments(ctx context.Context, q postgres.Querier, recordID string) ([]record.Amendment, error) {
	rows, err := q.Query(ctx, `SELECT id, by_whom, reason, answers, comments, signature_ref, attachments, changes, at
FROM record_amendments WHERE record_id = $1 ORDER BY seq`, recordID)
	if err != nil {
		return nil, fmt.Errorf("store: amendments of record %s: %w", recordID, translate(err))
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (record.Amendment, error) {
		a := record.Amendment{RecordID: recordID}
		var answers, attachments, changes []byte
		if err := r.Scan(&a.ID, &a.By, &a.Reason, &answers, &a.Correction.Comments, &a.Correction.SignatureRef, &attachments, &changes, &a.At); err != nil {
			return record.Amendment{}, err
		}
		a.At = a.At.UTC()
		an, err := fromJSONList[*typesv1.Answer](answers)
		if err != nil {
			return record.Amendment{}, err
		}
		at, err := fromJSONList[*feedbackv1.Attachment](attachments)
		if err != nil {
			return record.Amendment{}, err
		}
		ch, err := fromJSONList[*feedbackv1.FieldChange](changes)
		if err != nil {
			return record.Amendment{}, err
		}
		a.Correction.Answers, a.Correction.Attachments, a.Changes = wire.AnswersFromProto(an), wire.AttachmentsFromProto(at), wire.FieldChangesFromProto(ch)
		return a, nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: amendments of record %s: %w", recordID, translate(err))
	}
	return list, nil
}

// AddSignOff stores a leader's review of a record; sign-offs are append-only.
func AddSignOff(ctx context.Context, q postgres.Querier, tenant string, s record.SignOff) error {
	if _, err := q.Exec(ctx, `INSERT INTO record_sign_offs (tenant_id, record_id, leader_id, approved, note, at) VALUES ($1, $2, $3, $4, $5, $6)`,
		tenant, s.RecordID, s.LeaderID, s.Approved, s.Note, s.At); err != nil {
		return fmt.Errorf("store: insert sign-off of record %s: %w", s.RecordID, translate(err))
	}
	return nil
}

// SignOffs returns a record's sign-offs, oldest first.
func SignOffs(ctx context.Context, q postgres.Querier, recordID string) ([]record.SignOff, error) {
	rows, err := q.Query(ctx, `SELECT leader_id, approved, note, at FROM record_sign_offs WHERE record_id = $1 ORDER BY seq`, recordID)
	if err != nil {
		return nil, fmt.Errorf("store: sign-offs of record %s: %w", recordID, translate(err))
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (record.SignOff, error) {
		s := record.SignOff{RecordID: recordID}
		err := r.Scan(&s.LeaderID, &s.Approved, &s.Note, &s.At)
		s.At = s.At.UTC()
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: sign-offs of record %s: %w", recordID, translate(err))
	}
	return list, nil
}
