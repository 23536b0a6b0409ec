package store_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/record"
	"github.com/huifang/huifang/services/feedback/internal/store"
	"github.com/huifang/huifang/services/feedback/internal/visit"
	"github.com/huifang/huifang/services/feedback/migrations"
)

var t0 = time.Date(2025, 3, 2, 10, 0, 0, 0, time.UTC)

type env struct {
	ctx  context.Context
	pool *pgxpool.Pool
}

func setup(t *testing.T) *env {
	t.Helper()
	return &env{ctx: t.Context(), pool: servicetest.Pool(t, "feedback", migrations.FS)}
}

// blocked waits until a session of the test's database waits for a lock:
// the second of two updates of one row has reached the row.
func (e *env) blocked(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		var n int
		err := e.pool.QueryRow(e.ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
		return err == nil && n > 0
	}, 60*time.Second, 10*time.Millisecond, "the second update waits for the first's lock")
}

func (e *env) tx(t *testing.T, fn func(tx pgx.Tx) error) error {
	t.Helper()
	return pgx.BeginFunc(e.ctx, e.pool, fn)
}

// complaintOf stores a visit, its record and one complaint, and returns the complaint.
func (e *env) complaintOf(t *testing.T, visitID string) complaint.Complaint {
	t.Helper()
	rec := record.Record{ID: "r-" + visitID, TenantID: "default", VisitID: visitID, AgentID: "a-1", Channel: typesv1.Channel_CHANNEL_PHONE,
		Answers: []questionnaire.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_UNSATISFIED}}, LoggedAt: t0, CustomerID: "c-1"}
	c := complaint.Complaint{ID: "c-" + visitID, TenantID: "default", VisitID: visitID, CustomerID: "c-1", Category: "parking",
		Description: "no space", Key: "nospace", Department: "service_manager", Severity: "general", Status: complaint.StatusOpen,
		Deadline: t0.Add(48 * time.Hour), Window: 48 * time.Hour, OwnerAgentID: "a-1", CreatedAt: t0, UpdatedAt: t0, TimesRaised: 1}
	require.NoError(t, e.tx(t, func(tx pgx.Tx) error {
		if err := store.SaveVisit(e.ctx, tx, visit.Visit{TenantID: "default", VisitID: visitID, CustomerID: "c-1"}); err != nil {
			return err
		}
		if err := store.InsertRecord(e.ctx, tx, rec); err != nil {
			return err
		}
		if err := store.InsertComplaint(e.ctx, tx, rec.ID, c); err != nil {
			return err
		}
		return store.LinkComplaint(e.ctx, tx, rec.ID, c.ID, 0, false)
	}))
	return c
}

func TestDriverErrorsBecomeSentinels(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.complaintOf(t, "v-1")

	// The visit has its record: a second one is a conflict.
	err := store.InsertRecord(e.ctx, e.pool, record.Record{ID: "r-other", TenantID: "default", VisitID: "v-1", AgentID: "a-2", LoggedAt: t0})
	require.ErrorIs(t, err, store.ErrConflict)
	_, err = store.GetRecord(e.ctx, e.pool, "default", "nope")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = store.GetComplaint(e.ctx, e.pool, "acme", "c-v-1")
	require.ErrorIs(t, err, store.ErrNotFound, "complaints are per tenant")
	err = store.LinkComplaint(e.ctx, e.pool, "r-v-1", "nope", 1, false)
	require.ErrorIs(t, err, store.ErrNotFound, "a complaint that does not exist")
	err = store.InsertOpenLetter(e.ctx, e.pool, complaint.Letter{ID: "l-1", TenantID: "default", Title: "t", Body: "b", By: "m",
		ComplaintIDs: []string{"c-v-1", "nope"}, CreatedAt: t0})
	require.ErrorIs(t, err, store.ErrNotFound)

	// The triggers keep records append-only; that is no sentinel.
	_, err = e.pool.Exec(e.ctx, `DELETE FROM visit_records`)
	require.ErrorContains(t, err, "append-only")
}

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	e := setup(t)
	score := int32(7)
	rec := record.Record{ID: "r-1", TenantID: "default", VisitID: "v-1", AgentID: "a-1", Channel: typesv1.Channel_CHANNEL_ONSITE,
		Answers:  []questionnaire.Answer{{QuestionID: "recommend", Aspect: "recommend", Score: &score, Comment: "ok"}},
		Problems: []record.Problem{{Category: "billing", Description: "x", Severity: typesv1.Severity_SEVERITY_URGENT, Anonymous: true}},
		Comments: "fine", StartedAt: t0.Add(-time.Hour), EndedAt: t0.Add(-time.Minute), LoggedAt: t0, OccurredAt: t0.Add(-time.Hour), CustomerID: "c-1", OrgUnit: "o-1",
		QuestionnaireID: questionnaire.SeedAuto, QuestionnaireVersion: 1, SignatureRef: "sig-1",
		Attachments:     []record.Attachment{{Kind: "call_recording", Ref: "rec-1"}},
		PromisedReplies: []record.PromisedReply{{Question: "when?", PromisedAt: t0.Add(24 * time.Hour), Channel: typesv1.Channel_CHANNEL_SMS}},
	}
	require.NoError(t, e.tx(t, func(tx pgx.Tx) error {
		if err := store.SaveVisit(e.ctx, tx, visit.Visit{TenantID: "default", VisitID: "v-1"}); err != nil {
			return err
		}
		return store.InsertRecord(e.ctx, tx, rec)
	}))
	for _, id := range []string{"r-1", "v-1"} {
		got, err := store.GetRecord(e.ctx, e.pool, "default", id)
		require.NoError(t, err)
		require.Equal(t, rec, got)
	}
	list, err := store.ListRecords(e.ctx, e.pool, store.RecordFilter{Tenant: "default", Limit: 10})
	require.NoError(t, err)
	require.Equal(t, []record.Record{rec}, list)

	// A record without an event time (logged before migration 006) happened when it was logged.
	require.NoError(t, store.SaveVisit(e.ctx, e.pool, visit.Visit{TenantID: "default", VisitID: "v-old"}))
	_, err = e.pool.Exec(e.ctx, `INSERT INTO visit_records (id, tenant_id, visit_id, agent_id, channel, answers, problems, logged_at)
VALUES ('r-old', 'default', 'v-old', 'a-1', 'CHANNEL_PHONE', '[]', '[]', $1)`, t0)
	require.NoError(t, err)
	old, err := store.GetRecord(e.ctx, e.pool, "default", "r-old")
	require.NoError(t, err)
	require.Equal(t, t0, old.OccurredAt)
}

// UpdateComplaint holds the complaint while fn decides: two updates at
// once apply one after the other, and an error of fn saves nothing.
func TestUpdateComplaintByClosure(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.complaintOf(t, "v-1")

	boom := errors.New("boom")
	err := e.tx(t, func(tx pgx.Tx) error {
		_, err := store.UpdateComplaint(e.ctx, tx, "default", c.ID, func(c *complaint.Complaint) error {
			c.Status = complaint.StatusClosed
			return boom
		})
		return err
	})
	require.ErrorIs(t, err, boom)
	got, err := store.GetComplaint(e.ctx, e.pool, "default", c.ID)
	require.NoError(t, err)
	require.Equal(t, complaint.StatusOpen, got.Status, "nothing saved")

	raise := func(tx pgx.Tx) error {
		_, err := store.UpdateComplaint(e.ctx, tx, "default", c.ID, func(c *complaint.Complaint) error {
			c.Level++
			return nil
		})
		return err
	}
	first, err := e.pool.Begin(e.ctx)
	require.NoError(t, err)
	require.NoError(t, raise(first))
	var waited atomic.Bool
	done := make(chan error, 1)
	go func() {
		done <- e.tx(t, func(tx pgx.Tx) error {
			err := raise(tx)
			waited.Store(true)
			return err
		})
	}()
	e.blocked(t)
	require.False(t, waited.Load(), "the second update waits for the first")
	require.NoError(t, first.Commit(e.ctx))
	require.NoError(t, <-done)
	got, err = store.GetComplaint(e.ctx, e.pool, "default", c.ID)
	require.NoError(t, err)
	require.EqualValues(t, 2, got.Level, "the second decided over the first's change")
	require.Equal(t, c.Window, got.Window)
	require.Equal(t, "nospace", got.Key)
	require.EqualValues(t, 1, got.TimesRaised)

	err = e.tx(t, func(tx pgx.Tx) error {
		_, err := store.UpdateComplaint(e.ctx, tx, "default", "nope", func(*complaint.Complaint) error { return nil })
		return err
	})
	require.ErrorIs(t, err, store.ErrNotFound)
}

// UpdateAssignment lets fn decide over the assignment kept; two first
// assignments at once do not both insert: the second decides again.
func TestUpdateAssignmentByClosure(t *testing.T) {
	t.Parallel()
	e := setup(t)
	keep := func(a visit.Assignment) func(cur *visit.Assignment) (*visit.Assignment, error) {
		return func(cur *visit.Assignment) (*visit.Assignment, error) {
			if !a.Replaces(cur) {
				return nil, nil
			}
			return &a, nil
		}
	}
	agent := func() string {
		var a string
		require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT agent_id FROM visit_assignments WHERE visit_id = 'v-1'`).Scan(&a))
		return a
	}
	newer := visit.Assignment{TenantID: "default", VisitID: "v-1", AgentID: "a-2", AssignedAt: t0.Add(time.Minute), EventID: "e-2"}
	older := visit.Assignment{TenantID: "default", VisitID: "v-1", AgentID: "a-1", AssignedAt: t0, EventID: "e-1"}

	first, err := e.pool.Begin(e.ctx)
	require.NoError(t, err)
	require.NoError(t, store.UpdateAssignment(e.ctx, first, "default", "v-1", keep(newer)))
	var decisions atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- e.tx(t, func(tx pgx.Tx) error {
			return store.UpdateAssignment(e.ctx, tx, "default", "v-1", func(cur *visit.Assignment) (*visit.Assignment, error) {
				decisions.Add(1)
				return keep(older)(cur)
			})
		})
	}()
	e.blocked(t)
	require.NoError(t, first.Commit(e.ctx))
	require.NoError(t, <-done)
	require.EqualValues(t, 2, decisions.Load(), "none kept, then the first's")
	require.Equal(t, "a-2", agent(), "the older assignment heard late changes nothing")

	require.NoError(t, e.tx(t, func(tx pgx.Tx) error {
		return store.UpdateAssignment(e.ctx, tx, "default", "v-1", keep(visit.Assignment{VisitID: "v-1", AgentID: "a-3", AssignedAt: t0.Add(time.Hour)}))
	}))
	require.Equal(t, "a-3", agent())
}
