package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
)

const day = 24 * time.Hour

func weekly(id, name string) policy.Policy {
	return policy.Policy{ID: id, Tenant: "default", Name: name, Version: 1, Active: true, CreatedAt: t0,
		Trigger: policy.Trigger{ServiceTypes: []string{"delivery"}},
		Steps:   []policy.Step{{Offset: policy.Duration(7 * day), Channel: policy.ChannelPhone, SampleRate: 1, Every: policy.Duration(7 * day)}}}
}

func tx(t *testing.T, ctx context.Context, st *store.Store, fn func(pgx.Tx) error) {
	t.Helper()
	require.NoError(t, pgx.BeginFunc(ctx, st.Pool, fn))
}

func visits(t *testing.T, ctx context.Context, st *store.Store, f store.VisitFilter) []store.Visit {
	t.Helper()
	f.Tenant, f.Limit = "default", 500
	vs, err := st.ListVisits(ctx, f)
	require.NoError(t, err)
	return vs
}

func fire(t *testing.T, ctx context.Context, st *store.Store, at time.Time) int {
	t.Helper()
	n, err := st.FireDue(ctx, at, 500)
	require.NoError(t, err)
	return n
}

// Seed 002 (cement): a recurring step is one durable row at a time; firing it plans the next.
// UpdatePolicy makes a new version; the series keeps the version it came from.
func TestRecurringSeriesKeepsItsVersion(t *testing.T) {
	ctx, st := setup(t)
	require.NoError(t, st.CreatePolicy(ctx, weekly("p-care", "care")))
	plan(t, ctx, st.Pool, completed("d-1", "delivery", t0))
	v2, err := st.UpdatePolicy(ctx, "default", "p-care", func(p policy.Policy) (policy.Policy, error) {
		p.Steps[0].Every = policy.Duration(14 * day)
		return p, nil
	})
	require.NoError(t, err)
	require.Equal(t, 2, v2.Version)
	plan(t, ctx, st.Pool, completed("d-2", "delivery", t0))

	require.Equal(t, 2, fire(t, ctx, st, t0.Add(7*day)))
	one := visits(t, ctx, st, store.VisitFilter{ServiceID: "d-1", Status: "planned"})
	require.Len(t, one, 1)
	require.Equal(t, int32(1), one[0].PolicyVersion, "planned visits keep their version")
	require.Equal(t, int32(1), one[0].Occurrence)
	require.Equal(t, t0.Add(14*day), one[0].DueAt, "v1: weekly")
	two := visits(t, ctx, st, store.VisitFilter{ServiceID: "d-2", Status: "planned"})
	require.Equal(t, int32(2), two[0].PolicyVersion)
	require.Equal(t, t0.Add(21*day), two[0].DueAt, "v2: every 2 weeks")

	_, err = st.SetActive(ctx, "default", "p-care", false)
	require.NoError(t, err)
	require.Equal(t, 1, fire(t, ctx, st, t0.Add(14*day)))
	require.Empty(t, visits(t, ctx, st, store.VisitFilter{ServiceID: "d-1", Status: "planned"}), "a deactivated policy's series stops")
	_, err = st.SetActive(ctx, policy.AllTenants, "builtin-appliance-purchase", false)
	require.ErrorIs(t, err, store.ErrBuiltin, "the built-in itself is switched per tenant only")
}

// Contact policy across every program: 1 call in 3 days per customer; the second call moves and says why.
func TestFrequencyCapAcrossPolicies(t *testing.T) {
	ctx, st := setup(t)
	require.NoError(t, st.SetContactRules(ctx, "default", contact.Rules{Caps: []contact.Cap{{Channel: policy.ChannelPhone, Max: 1, Per: policy.Duration(3 * day)}}}, t0))
	a := policy.Policy{ID: "a", Tenant: "default", Name: "a", Version: 1, Active: true, CreatedAt: t0, Trigger: policy.Trigger{ServiceTypes: []string{"repair"}},
		Steps: []policy.Step{{Channel: policy.ChannelPhone, SampleRate: 1, Window: policy.Duration(5 * day)}}}
	b := a
	b.ID, b.Name = "b", "b"
	require.NoError(t, st.CreatePolicy(ctx, a))
	require.NoError(t, st.CreatePolicy(ctx, b))
	ev := completed("r-1", "repair", t0)
	plan(t, ctx, st.Pool, ev)
	require.Equal(t, 2, fire(t, ctx, st, t0))
	due := visits(t, ctx, st, store.VisitFilter{Status: "due"})
	require.Len(t, due, 1)
	moved := visits(t, ctx, st, store.VisitFilter{Status: "planned"})
	require.Len(t, moved, 1)
	require.Equal(t, t0.Add(3*day), moved[0].DueAt)
	require.Contains(t, moved[0].Reason, "cap 1 CHANNEL_PHONE per 3d")
	require.Equal(t, policy.KindCap, moved[0].Decisions[len(moved[0].Decisions)-1].Kind)
	require.Zero(t, fire(t, ctx, st, t0.Add(2*day)))
	require.Equal(t, 1, fire(t, ctx, st, t0.Add(3*day)))
}

// Opt-outs (ContactOptedOut) cancel the customer's pending visits on the channel and say why;
// CustomerUpdated keeps the newest version of the preferences.
func TestOptOutAndCustomerPreferences(t *testing.T) {
	ctx, st := setup(t)
	plan(t, ctx, st.Pool, completed("s-1", "purchase", t0))
	tx(t, ctx, st, func(tx pgx.Tx) error {
		n, err := store.OptOut(ctx, tx, "default", "cust-s-1", policy.ChannelPhone, t0.Add(time.Hour))
		require.Equal(t, 1, n)
		return err
	})
	vs := visits(t, ctx, st, store.VisitFilter{ServiceID: "s-1"})
	require.Equal(t, "cancelled", vs[0].Status)
	require.Equal(t, "customer opted out of CHANNEL_PHONE", vs[0].Reason)
	require.Equal(t, 1, outboxCount(t, ctx, st.Pool, stream.SubjectVisitCancelled))
	// a later service of the same customer is suppressed at fire time.
	plan(t, ctx, st.Pool, completed("s-2", "purchase", t0.Add(day)))
	tx(t, ctx, st, func(tx pgx.Tx) error {
		return store.UpsertCustomer(ctx, tx, "default", &typesv1.Customer{Id: "cust-s-2", Preferences: &typesv1.ContactPreferences{DislikesCalls: true}}, 3, t0)
	})
	tx(t, ctx, st, func(tx pgx.Tx) error {
		return store.UpsertCustomer(ctx, tx, "default", &typesv1.Customer{Id: "cust-s-2"}, 2, t0)
	})
	var dislikes bool
	require.NoError(t, st.Pool.QueryRow(ctx, `SELECT (prefs->>'dislikes_calls')::bool FROM customers WHERE customer_id = 'cust-s-2'`).Scan(&dislikes))
	require.True(t, dislikes, "an older CustomerUpdated never overwrites a newer one")
}

// Stop conditions: the customer came in; a resolved complaint plans its confirmation (seed 003:
// within 48 hours) and the due visit names the complaint; feedback's follow-up rounds (seed 004).
func TestStopsComplaintsAndFollowUps(t *testing.T) {
	ctx, st := setup(t)
	p := weekly("p-remind", "remind")
	p.Stop = policy.Stop{ServiceTypes: []string{"maintenance"}}
	require.NoError(t, st.CreatePolicy(ctx, p))
	ev := completed("d-1", "delivery", t0)
	plan(t, ctx, st.Pool, ev)
	m := completed("m-1", "maintenance", t0.Add(2*day))
	m.Customer = ev.Customer
	plan(t, ctx, st.Pool, m)
	vs := visits(t, ctx, st, store.VisitFilter{ServiceID: "d-1"})
	require.Equal(t, "cancelled", vs[0].Status)
	require.Contains(t, vs[0].Reason, "the customer came in (maintenance")

	resolved := &eventsv1.ComplaintResolved{TenantId: "default", ComplaintId: "cp-1", CustomerId: "cust-x", ResolvedAt: timestamppb.New(t0),
		Severity: typesv1.Severity_SEVERITY_MAJOR, Customer: &typesv1.Customer{Id: "cust-x", Phone: "+8613800000000"}}
	tx(t, ctx, st, func(tx pgx.Tx) error {
		n, err := store.PlanComplaintResolved(ctx, tx, resolved)
		require.Equal(t, 1, n)
		return err
	})
	cv := visits(t, ctx, st, store.VisitFilter{PolicyID: "builtin-complaint-resolved"})
	require.Len(t, cv, 1)
	require.Equal(t, t0, cv[0].DueAt)
	require.Equal(t, t0.Add(48*time.Hour), cv[0].Deadline)
	fire(t, ctx, st, t0)
	var payload []byte
	require.NoError(t, st.Pool.QueryRow(ctx, `SELECT payload FROM outbox WHERE subject = $1`, stream.SubjectVisitDue).Scan(&payload))
	due := &eventsv1.VisitDue{}
	require.NoError(t, proto.Unmarshal(payload, due))
	require.Equal(t, "cp-1", due.ComplaintId)
	require.Equal(t, typesv1.Severity_SEVERITY_MAJOR, due.Severity)

	for round := range 2 {
		tx(t, ctx, st, func(tx pgx.Tx) error {
			_, err := store.PlanFollowUp(ctx, tx, &eventsv1.FollowUpRequested{TenantId: "default", CustomerId: "cust-x", ComplaintId: "cp-1",
				Reason: "not satisfied", DueAt: timestamppb.New(t0.Add(time.Duration(round+1) * day)), Group: "supervisor"}, t0)
			return err
		})
	}
	fu := visits(t, ctx, st, store.VisitFilter{PolicyID: store.FollowUpPolicyID})
	require.Len(t, fu, 2, "one visit per round until settled")
	require.Equal(t, "supervisor", fu[1].Group)
	require.Equal(t, int32(1), fu[1].Occurrence)
	require.Equal(t, int32(policy.ChannelOnsite), fu[0].Channel, "seed 000: a major complaint is followed up on site, not by phone")
}

// A tenant's contact windows apply when a visit is planned: the move is recorded.
func TestWindowsMoveVisitsWhenPlanned(t *testing.T) {
	ctx, st := setup(t)
	r := contact.Preset002()
	r.TimeZone = "Asia/Shanghai"
	require.NoError(t, st.SetContactRules(ctx, "default", r, t0))
	plan(t, ctx, st.Pool, completed("s-1", "purchase", t0)) // due t0+1d = 18:00 in Shanghai
	v := visits(t, ctx, st, store.VisitFilter{ServiceID: "s-1"})[0]
	require.Equal(t, time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC), v.DueAt, "10:00 the next morning in Shanghai")
	require.Equal(t, t0.Add(day), v.Nominal)
	require.Equal(t, policy.KindWindow, v.Decisions[len(v.Decisions)-1].Kind)
}

// Seed 000 (property): anonymous complaints, or ones where only a written reply was asked for, need no follow-up.
func TestAnonymousComplaintsNeedNoFollowUp(t *testing.T) {
	ctx, st := setup(t)
	p := policy.Policy{ID: "cc", Tenant: "default", Name: "cc", Version: 1, Active: true, CreatedAt: t0, Trigger: policy.Trigger{ServiceTypes: []string{"complaint_closed"}},
		Steps: []policy.Step{{Channel: policy.ChannelPhone, SampleRate: 1, Window: policy.Duration(3 * day)}}}
	require.NoError(t, st.CreatePolicy(ctx, p))
	for i, c := range []*typesv1.Complaint{{Reference: "a", Anonymous: true}, {Reference: "w", WrittenReplyOnly: true}, {Reference: "n", Severity: typesv1.Severity_SEVERITY_URGENT}} {
		ev := completed("c-"+c.Reference, "complaint_closed", t0)
		ev.Complaint = c
		require.Equal(t, []int{0, 0, 1}[i], plan(t, ctx, st.Pool, ev))
	}
	vs := visits(t, ctx, st, store.VisitFilter{ServiceID: "c-a"})
	require.Equal(t, "suppressed", vs[0].Status)
	require.Contains(t, vs[0].Reason, "anonymous")
}

// Stop condition "answered": a logged visit of a series ends the rest of it.
func TestAnsweredVisitEndsTheSeries(t *testing.T) {
	ctx, st := setup(t)
	p := weekly("p-lead", "lead")
	p.Stop = policy.Stop{Answered: true}
	require.NoError(t, st.CreatePolicy(ctx, p))
	plan(t, ctx, st.Pool, completed("d-1", "delivery", t0))
	require.Equal(t, 1, fire(t, ctx, st, t0.Add(7*day)))
	first := visits(t, ctx, st, store.VisitFilter{ServiceID: "d-1", Status: "due"})[0]
	require.Len(t, visits(t, ctx, st, store.VisitFilter{ServiceID: "d-1", Status: "planned"}), 1)
	tx(t, ctx, st, func(tx pgx.Tx) error {
		n, err := store.StopAnswered(ctx, tx, "default", first.ID, t0.Add(8*day))
		require.Equal(t, 1, n)
		return err
	})
	require.Empty(t, visits(t, ctx, st, store.VisitFilter{ServiceID: "d-1", Status: "planned"}))
}

// Seed 000: an anonymous complaint, or one where only a written reply was
// requested, gets no follow-up: its confirmation visit is kept as suppressed.
func TestNoFollowUpForWrittenReplyOnlyComplaints(t *testing.T) {
	ctx, st := setup(t)
	resolved := &eventsv1.ComplaintResolved{TenantId: "default", ComplaintId: "cp-w", CustomerId: "cust-w", ResolvedAt: timestamppb.New(t0),
		NoFollowUp: true, Customer: &typesv1.Customer{Id: "cust-w", Phone: "+8613800000000"}}
	tx(t, ctx, st, func(tx pgx.Tx) error {
		n, err := store.PlanComplaintResolved(ctx, tx, resolved)
		require.Zero(t, n)
		return err
	})
	cv := visits(t, ctx, st, store.VisitFilter{PolicyID: "builtin-complaint-resolved"})
	require.Len(t, cv, 1)
	require.Equal(t, "suppressed", cv[0].Status)
	require.Contains(t, cv[0].Reason, "written-reply-only")
	fire(t, ctx, st, t0.Add(time.Hour))
	var n int
	require.NoError(t, st.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.SubjectVisitDue).Scan(&n))
	require.Zero(t, n)
}
