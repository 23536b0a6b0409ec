package visit

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

func series() (policy.Policy, policy.Service) {
	p := policy.Policy{ID: "p", Tenant: "t", Name: "p", Version: 1, Active: true, Trigger: policy.Trigger{ServiceTypes: []string{"delivery"}},
		Stop:  policy.Stop{ServiceTypes: []string{"maintenance"}, Answered: true},
		Steps: []policy.Step{{Channel: policy.ChannelPhone, SampleRate: 1, Every: policy.Duration(7 * day)}, {Channel: policy.ChannelSMS, SampleRate: 1}}}
	s := policy.Service{Tenant: "t", ID: "s", Type: "delivery", CustomerID: "c", CompletedAt: t0}
	return p, s
}

// A planned visit records what it follows and its policy version's stop
// conditions; a recurring step keeps the service to plan the next visit.
func TestNew(t *testing.T) {
	p, s := series()
	vs := plan(t, p, s, policy.NoHolidays{})
	v := New("v-1", vs[0], s, &p, []byte(`{}`), "cp-1", 3)
	require.Equal(t, StatusPlanned, v.Status)
	require.Equal(t, "c", v.CustomerID)
	require.Equal(t, []string{"maintenance"}, v.StopTypes)
	require.True(t, v.StopOnAnswer)
	require.NotNil(t, v.Service, "recurring: the service is kept")
	require.Equal(t, "cp-1", v.ComplaintID)
	once := New("v-2", vs[1], s, &p, nil, "", 0)
	require.Nil(t, once.Service)
	vs[0].Planned = false
	require.Equal(t, StatusSuppressed, New("v-3", vs[0], s, &p, nil, "", 0).Status, "not planned: kept as suppressed")
	followUp := New("v-4", policy.Visit{Planned: true}, s, nil, nil, "", 0)
	require.Empty(t, followUp.StopTypes)
}

// The life of a visit: moved or suppressed by the contact policy, fired,
// stopped, rescheduled by the customer, cancelled; each change explained.
func TestTransitions(t *testing.T) {
	p, s := series()
	v := New("v-1", plan(t, p, s, policy.NoHolidays{})[0], s, &p, nil, "", 0)
	require.False(t, v.StopCameIn(policy.Service{Type: "maintenance", CustomerID: "c", CompletedAt: t0.Add(-day)}), "an earlier service does not stop it")
	require.False(t, v.StopCameIn(policy.Service{Type: "repair", CustomerID: "c", CompletedAt: t0.Add(day)}), "nor one of another type")
	require.False(t, v.StopOptedOut(policy.ChannelSMS, t0), "an opt-out of another channel")
	require.False(t, v.StopAnswered(Visit{Visit: policy.Visit{PolicyID: "p"}, ID: "v-0", Tenant: "t", ServiceID: "s"}, t0), "the answered visit's policy does not stop when answered")
	require.Equal(t, StatusPlanned, v.Status)

	deadline := v.Deadline
	require.False(t, v.Late())
	v.Due(contact.Outcome{Action: contact.Move, At: t0.Add(3 * day), Reason: "moved", Decisions: []policy.Decision{{Kind: policy.KindCap}}}, t0)
	require.Equal(t, StatusPlanned, v.Status)
	require.Equal(t, t0.Add(3*day), v.DueAt)
	require.Equal(t, deadline, v.Deadline, "issue 16: the deadline stays the policy's")
	require.True(t, v.Late(), "moved past its deadline: late")
	require.Equal(t, t0, v.UpdatedAt)

	v.Deadline = v.DueAt.Add(2 * day)
	at := t0.Add(5 * day)
	require.NoError(t, v.Reschedule(at, "travels", t0))
	require.True(t, v.CustomerChosen)
	require.Equal(t, at, v.DueAt)
	require.Equal(t, at.Add(2*day), v.Deadline, "the deadline moves with it")
	require.True(t, v.Pending().CustomerChosen)

	v.Due(contact.Outcome{Action: contact.Fire, At: at}, at)
	require.Equal(t, StatusDue, v.Status)
	require.Equal(t, at, v.FiredAt)
	require.False(t, v.Late(), "fired by its deadline")
	require.ErrorIs(t, v.Reschedule(at, "again", at), ErrState, "only a planned visit is rescheduled")
	require.False(t, v.StopCameIn(policy.Service{Type: "maintenance", CustomerID: "c", CompletedAt: at.Add(day)}), "only a planned visit is stopped")
	require.NoError(t, v.Cancel("moved abroad", at), "a due visit can still be cancelled")
	require.Equal(t, "cancelled: moved abroad", v.Reason)
	require.ErrorIs(t, v.Cancel("again", at), ErrState)
	v.Unreachable(3, "no answer", at)
	require.Equal(t, policy.KindUnreachable, v.Decisions[len(v.Decisions)-1].Kind)

	w := New("v-2", plan(t, p, s, policy.NoHolidays{})[0], s, &p, nil, "", 0)
	w.Due(contact.Outcome{Action: contact.Suppress, Reason: "opted out", Decisions: []policy.Decision{{Kind: policy.KindOptOut}}}, t0)
	require.Equal(t, StatusSuppressed, w.Status)
	require.Equal(t, "opted out", w.Reason)
	x := New("v-3", plan(t, p, s, policy.NoHolidays{})[0], s, &p, nil, "", 0)
	require.True(t, x.StopOptedOut(policy.ChannelPhone, t0))
	require.Equal(t, StatusCancelled, x.Status)
	require.Equal(t, "customer opted out of CHANNEL_PHONE", x.Reason)
	require.Equal(t, policy.KindOptOut, x.Decisions[len(x.Decisions)-1].Kind)
	y := New("v-4", plan(t, p, s, policy.NoHolidays{})[0], s, &p, nil, "", 0)
	require.True(t, y.StopCameIn(policy.Service{ID: "m", Type: "maintenance", CustomerID: "c", CompletedAt: t0.Add(day)}))
	require.Equal(t, "stopped: the customer came in (maintenance m)", y.Reason)
	require.Equal(t, t0.Add(day), y.UpdatedAt)
	z := New("v-5", plan(t, p, s, policy.NoHolidays{})[0], s, &p, nil, "", 0)
	require.True(t, z.StopAnswered(Visit{Visit: policy.Visit{PolicyID: "p"}, ID: "v-0", Tenant: "t", ServiceID: "s", StopOnAnswer: true}, t0))
	require.Equal(t, "stopped: the customer answered visit v-0", z.Reason)
	require.Equal(t, policy.KindStop, z.Decisions[len(z.Decisions)-1].Kind)
}

// A visit whose firing failed is failed with the error and the time, until
// an operator retries it (Reschedule: planned again at the time asked, not
// the customer's choice) or cancels it; the error is stored as Postgres can
// keep it.
func TestFailRetryCancel(t *testing.T) {
	p, s := series()
	v := New("v-1", plan(t, p, s, policy.NoHolidays{})[0], s, &p, nil, "", 0)
	v.Deadline = v.DueAt.Add(2 * day)
	at := v.DueAt.Add(time.Hour)
	v.Fail("policy spec: cannot be decoded", at)
	require.Equal(t, StatusFailed, v.Status)
	require.Equal(t, "firing failed: policy spec: cannot be decoded", v.Reason)
	require.Equal(t, at, v.FailedAt)
	require.Equal(t, policy.Decision{Kind: policy.KindFireFailed, Detail: v.Reason, At: at}, v.Decisions[len(v.Decisions)-1])
	require.False(t, v.StopOptedOut(policy.ChannelPhone, at), "a failed visit waits for an operator")

	retry := at.Add(day)
	require.NoError(t, v.Reschedule(retry, "policy repaired", retry))
	require.Equal(t, StatusPlanned, v.Status)
	require.Equal(t, retry, v.DueAt)
	require.Equal(t, retry.Add(2*day), v.Deadline, "the deadline moves with it")
	require.False(t, v.CustomerChosen, "the contact policy applies again")
	require.Equal(t, at, v.FailedAt, "the last failure is kept")
	require.Equal(t, policy.KindRetry, v.Decisions[len(v.Decisions)-1].Kind)
	require.Contains(t, v.Reason, "policy repaired")

	v.Fail("again", retry)
	require.NoError(t, v.Cancel("customer data lost", retry), "a failed visit can be given up")
	require.Equal(t, StatusCancelled, v.Status)

	w := New("v-2", plan(t, p, s, policy.NoHolidays{})[0], s, &p, nil, "", 0)
	w.Fail("panic: \x00bad \xff"+strings.Repeat("界", MaxFailure), at)
	require.True(t, utf8.ValidString(w.Reason))
	require.NotContains(t, w.Reason, "\x00")
	require.LessOrEqual(t, len(w.Reason), len("firing failed: ")+MaxFailure+len("…"))
	require.True(t, strings.HasSuffix(w.Reason, "…"))
}

// plan plans the service with a fresh quota in memory.
func plan(t *testing.T, p policy.Policy, s policy.Service, cal policy.Calendar) []policy.Visit {
	t.Helper()
	vs, err := p.Plan(s, cal, policy.MemoryQuota{})
	require.NoError(t, err)
	return vs
}
