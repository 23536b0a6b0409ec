package app

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/improvement"
)

// Seed 003 (改进落实率): the owning department sets a plan for a problem a
// follow-up found and marks each measure carried out; the caller's scope
// holds, every change is audited and announced without its text, and an
// erasure blanks the texts and notes.
func TestImprovementPlan(t *testing.T) {
	e := setup(t)
	id := e.unsatisfied(t, "v-1") // service_manager, branch-north
	c, err := e.app.GetComplaint(e.ctx, "default", id)
	require.NoError(t, err)
	found := c.Complaint.CreatedAt
	const secret = "王芳 +8613800138000"
	measures := []improvement.Measure{
		{Text: "retrain the advisor who forgot " + secret, Owner: "service manager Li", DueAt: found.Add(7 * 24 * time.Hour)},
		{Text: "call-back checklist", Owner: "front desk", DueAt: found.Add(30 * 24 * time.Hour)},
	}
	as := func(p auth.Principal) context.Context {
		p.Tenant = "default"
		return auth.With(e.ctx, p)
	}
	owner := as(auth.Principal{Subject: "kc-own", Roles: []auth.Role{auth.DepartmentOwner}, Departments: []string{"service_manager"}})
	otherOwner := as(auth.Principal{Subject: "kc-rnd", Roles: []auth.Role{auth.DepartmentOwner}, Departments: []string{"rnd_production"}})
	otherLeader := as(auth.Principal{Subject: "kc-south", Roles: []auth.Role{auth.Leader}, AgentID: "lead-s", OrgUnits: []string{"branch-south"}})
	leader := as(auth.Principal{Subject: "kc-north", Roles: []auth.Role{auth.Leader}, AgentID: "lead-n", OrgUnits: []string{"branch-north"}})

	t.Run("out of scope is denied", func(t *testing.T) {
		for _, ctx := range []context.Context{otherOwner, otherLeader} {
			_, err := e.app.SetImprovementPlan(ctx, SetPlan{ComplaintID: id, Measures: measures})
			require.ErrorIs(t, err, auth.ErrPermissionDenied)
		}
	})
	t.Run("validation names the fields", func(t *testing.T) {
		_, err := e.app.SetImprovementPlan(owner, SetPlan{ComplaintID: id, Measures: []improvement.Measure{
			{Owner: "x", DueAt: found.Add(time.Hour)},
			{Text: "y", DueAt: found.Add(31 * 24 * time.Hour)},
			{Text: strings.Repeat("z", improvement.MaxText+1), Owner: "x", DueAt: found.Add(-time.Hour)},
			{Text: "w", Owner: "x"},
		}})
		var bad *invalid.Error
		require.True(t, errors.As(err, &bad), "%v", err)
		var fields []string
		for _, v := range bad.Violations {
			fields = append(fields, v.Field)
		}
		require.ElementsMatch(t, []string{"measures[0].text", "measures[1].owner", "measures[1].due_at", "measures[2].text", "measures[2].due_at", "measures[3].due_at"}, fields)
		_, err = e.app.SetImprovementPlan(owner, SetPlan{ComplaintID: id})
		require.ErrorContains(t, err, "measures")
		_, err = e.app.SetImprovementPlan(owner, SetPlan{ComplaintID: "nope", Measures: measures})
		require.ErrorIs(t, err, ErrNotFound)
	})

	e.clock.Advance(2 * 24 * time.Hour)
	p, err := e.app.SetImprovementPlan(owner, SetPlan{ComplaintID: id, Measures: measures})
	require.NoError(t, err)
	require.Len(t, p.Measures, 2)
	require.Equal(t, "kc-own", p.SetBy, "who sets it comes from the token")
	setAt := p.SetAt
	var set eventsv1.ImprovementPlanSet
	e.last(t, stream.SubjectImprovementPlanSet, &set)
	require.Equal(t, int32(2), set.Measures)
	require.Equal(t, found, set.EscalatedAt.AsTime())
	require.Equal(t, "service_manager", set.Department)

	// Remade while nothing is carried out: new measures, the first time stays.
	e.clock.Advance(time.Hour)
	p, err = e.app.SetImprovementPlan(leader, SetPlan{ComplaintID: id, Measures: measures})
	require.NoError(t, err)
	require.Equal(t, setAt, p.SetAt)
	require.Equal(t, "lead-n", p.SetBy)

	_, err = e.app.CompleteImprovementMeasure(owner, CompleteMeasure{ComplaintID: id, MeasureID: p.Measures[0].ID, OccurredAt: setAt.Add(-time.Minute)})
	require.ErrorContains(t, err, "occurred_at", "not before the plan")
	_, err = e.app.CompleteImprovementMeasure(owner, CompleteMeasure{ComplaintID: id, MeasureID: p.Measures[0].ID, OccurredAt: e.clock.Now().Add(time.Hour)})
	require.ErrorContains(t, err, "occurred_at", "not in the future")
	_, err = e.app.CompleteImprovementMeasure(owner, CompleteMeasure{ComplaintID: id, MeasureID: "nope"})
	require.ErrorIs(t, err, ErrNotFound)
	_, err = e.app.CompleteImprovementMeasure(otherOwner, CompleteMeasure{ComplaintID: id, MeasureID: p.Measures[0].ID})
	require.ErrorIs(t, err, auth.ErrPermissionDenied)

	done := e.clock.Now().Add(-30 * time.Minute)
	p, err = e.app.CompleteImprovementMeasure(owner, CompleteMeasure{ComplaintID: id, MeasureID: p.Measures[0].ID, Note: "done with " + secret, OccurredAt: done})
	require.NoError(t, err)
	require.Equal(t, done, p.Measures[0].CompletedAt)
	require.False(t, p.CarriedOut())
	_, err = e.app.CompleteImprovementMeasure(owner, CompleteMeasure{ComplaintID: id, MeasureID: p.Measures[0].ID})
	require.ErrorIs(t, err, improvement.ErrCarriedOut, "once")
	_, err = e.app.SetImprovementPlan(owner, SetPlan{ComplaintID: id, Measures: measures})
	require.ErrorIs(t, err, improvement.ErrCarriedOut, "a plan with a carried-out measure stays")
	var completed eventsv1.ImprovementMeasureCompleted
	e.last(t, stream.SubjectImprovementMeasureCompleted, &completed)
	require.Equal(t, [2]int32{1, 2}, [2]int32{completed.MeasuresDone, completed.Measures})
	require.Equal(t, done, completed.CompletedAt.AsTime())

	p, err = e.app.CompleteImprovementMeasure(owner, CompleteMeasure{ComplaintID: id, MeasureID: p.Measures[1].ID})
	require.NoError(t, err)
	require.True(t, p.CarriedOut())
	view, err := e.app.GetComplaint(e.ctx, "default", id)
	require.NoError(t, err)
	require.NotNil(t, view.Plan)
	require.True(t, view.Plan.CarriedOut())

	// Audited, without free text; the events carry none either.
	var actions []string
	for _, ev := range e.auditLog(t, "default") {
		actions = append(actions, ev.Action)
		require.NotContains(t, string(ev.Detail), "王芳")
	}
	require.Equal(t, []string{"improvement.set", "improvement.set", "improvement.complete", "improvement.complete"}, actions)
	require.Equal(t, audit.Target{Kind: "complaint", ID: id}, e.auditLog(t, "default")[0].Target)
	for _, r := range e.outbox(t) {
		require.NotContains(t, string(r.Payload), "王芳", r.Subject)
	}

	// An erasure blanks the measures' texts and notes; owners, dates and completion stay.
	require.NoError(t, pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error { return e.app.ForgetCustomerTx(e.ctx, tx, "default", "cust-v-1") }))
	view, err = e.app.GetComplaint(e.ctx, "default", id)
	require.NoError(t, err)
	for _, m := range view.Plan.Measures {
		require.Empty(t, m.Text)
		require.Empty(t, m.Note)
		require.NotEmpty(t, m.Owner)
		require.False(t, m.CompletedAt.IsZero())
	}
}
