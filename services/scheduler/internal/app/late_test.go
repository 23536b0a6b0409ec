package app_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	calendar "github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
)

// lastDecision is the kind of a visit's last decision.
func lastDecision(t *testing.T, ds []policy.Decision) policy.Decision {
	t.Helper()
	require.NotEmpty(t, ds)
	return ds[len(ds)-1]
}

// Issue 16 (a late visit keeps its deadline and is reported late); seed 001:
// a purchase call is timely until 3 days after. The scheduler was down past
// the deadline: the visit fires at once, with the policy's deadline, marked
// late on VisitDue and in the API (ListPlannedVisits, ExplainVisit); a visit
// fired in time is not late.
func TestAVisitFiredAfterItsDeadlineKeepsItAndIsReportedLate(t *testing.T) {
	b := setup(t)
	plan(t, b, completed(t, "s-1", "purchase", t0))
	plan(t, b, completed(t, "s-2", "purchase", t0.Add(3*day+time.Hour)))
	require.Equal(t, 1, fire(t, b, t0.Add(4*day)), "the scheduler comes back a day after s-1's deadline")
	require.Equal(t, 1, fire(t, b, t0.Add(4*day+time.Hour)), "s-2 falls due in time")

	dues := dueEvents(t, b)
	require.Len(t, dues, 2)
	require.Equal(t, "s-1", dues[0].ServiceId)
	require.True(t, dues[0].Late, "announced late")
	require.Equal(t, t0.Add(3*day), dues[0].Deadline.AsTime(), "the deadline is the policy's, not the firing time")
	require.False(t, dues[1].Late)
	require.Equal(t, t0.Add(6*day+time.Hour), dues[1].Deadline.AsTime())

	late := visitOf(t, b, "default", "s-1")
	require.True(t, late.Late())
	require.Equal(t, t0.Add(3*day), late.Deadline)
	d := lastDecision(t, late.Decisions)
	require.Equal(t, policy.KindLate, d.Kind)
	require.Equal(t, "fired at 2026-12-02T10:00:00Z, 1d after its deadline 2026-12-01T10:00:00Z: it is reported late (the deadline stays the policy's)", d.Detail)
	require.False(t, visitOf(t, b, "default", "s-2").Late())
}

// Issue 16 ("a contact window can push a visit past its deadline without
// anyone being told"): seed 002's windows (10:00–11:30, 15:30–17:00) move a
// call due at 20:00 in Shanghai with one hour to be made to 10:00 the next
// morning. When planned, the visit keeps its deadline (21:00) and says it
// will be late; when it fires, VisitDue says late. Quiet hours set after
// planning that move a visit past its deadline when it falls due do the same.
func TestAContactWindowMovingAVisitPastItsDeadlineMakesItLate(t *testing.T) {
	b := setup(t)
	r := contact.Preset002()
	r.TimeZone = "Asia/Shanghai"
	_, err := b.a.SetContactPolicy(b.ctx, "default", r, "")
	require.NoError(t, err)
	hour := policy.Policy{ID: "callback", Tenant: "default", Name: "callback", Version: 1, Active: true, CreatedAt: t0,
		Trigger: policy.Trigger{ServiceTypes: []string{"lead_call"}},
		Steps:   []policy.Step{{Channel: policy.ChannelPhone, SampleRate: 1, Window: policy.Duration(time.Hour)}}}
	require.NoError(t, store.InsertPolicy(b.ctx, b.pool, hour))

	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC) // 20:00 in Shanghai
	plan(t, b, completed(t, "l-1", "lead_call", at))
	v := visitOf(t, b, "default", "l-1")
	require.Equal(t, time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC), v.DueAt, "10:00 the next morning in Shanghai")
	require.Equal(t, at.Add(time.Hour), v.Deadline, "the deadline stays the policy's")
	require.True(t, v.Late(), "planned late")
	require.Equal(t, policy.KindLate, lastDecision(t, v.Decisions).Kind)
	require.Contains(t, v.Reason, "late: after its deadline 2026-11-30T13:00:00Z")

	fire(t, b, v.DueAt)
	dues := dueEvents(t, b)
	require.Len(t, dues, 1)
	require.True(t, dues[0].Late)
	require.Equal(t, at.Add(time.Hour), dues[0].Deadline.AsTime())

	// Planned in time (no windows), then quiet hours 21:00–08:00 (Shanghai) set
	// before it falls due: moved to 08:00, past its deadline, and late.
	_, err = b.a.SetContactPolicy(b.ctx, "default", contact.Rules{}, "")
	require.NoError(t, err)
	plan(t, b, completed(t, "l-2", "lead_call", at.Add(day+2*time.Hour))) // 22:00 in Shanghai
	require.False(t, visitOf(t, b, "default", "l-2").Late())
	_, err = b.a.SetContactPolicy(b.ctx, "default", contact.Rules{Calendar: calendar.Calendar{TimeZone: "Asia/Shanghai", Quiet: &calendar.Window{Start: 21 * 60, End: 8 * 60}}}, "")
	require.NoError(t, err)
	require.Zero(t, fire(t, b, at.Add(day+2*time.Hour))-1, "handled: moved")
	moved := visitOf(t, b, "default", "l-2")
	require.Equal(t, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), moved.DueAt, "08:00 in Shanghai")
	require.Equal(t, at.Add(day+3*time.Hour), moved.Deadline)
	require.True(t, moved.Late())
	fire(t, b, moved.DueAt)
	dues = dueEvents(t, b)
	require.Len(t, dues, 2)
	require.True(t, dues[1].Late)
	fired, err := b.a.ListVisits(b.ctx, app.VisitQuery{Tenant: "default", ServiceID: "l-2", Limit: 10})
	require.NoError(t, err)
	require.Equal(t, policy.KindLate, lastDecision(t, fired[0].Decisions).Kind)
}
