package app_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/engine"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
)

func weekly(id, name string) policy.Policy {
	return policy.Policy{ID: id, Tenant: "default", Name: name, Version: 1, Active: true, CreatedAt: t0,
		Trigger: policy.Trigger{ServiceTypes: []string{"delivery"}},
		Steps:   []policy.Step{{Offset: policy.Duration(7 * day), Channel: policy.ChannelPhone, SampleRate: 1, Every: policy.Duration(7 * day)}}}
}

// Seed 002 (cement): a recurring step is one durable row at a time; firing it plans the next.
// UpdatePolicy makes a new version; the series keeps the version it came from.
func TestRecurringSeriesKeepsItsVersion(t *testing.T) {
	b := setup(t)
	require.NoError(t, store.InsertPolicy(b.ctx, b.pool, weekly("p-care", "care")))
	plan(t, b, completed(t, "d-1", "delivery", t0))
	next := weekly("p-care", "care")
	next.Steps[0].Every = policy.Duration(14 * day)
	v2, err := b.a.UpdatePolicy(b.ctx, "default", "p-care", next)
	require.NoError(t, err)
	require.Equal(t, 2, v2.Version)
	plan(t, b, completed(t, "d-2", "delivery", t0))

	require.Equal(t, 2, fire(t, b, t0.Add(7*day)))
	one := visits(t, b, app.VisitQuery{ServiceID: "d-1", Status: "planned"})
	require.Len(t, one, 1)
	require.Equal(t, 1, one[0].PolicyVersion, "planned visits keep their version")
	require.Equal(t, 1, one[0].Occurrence)
	require.Equal(t, t0.Add(14*day), one[0].DueAt, "v1: weekly")
	two := visits(t, b, app.VisitQuery{ServiceID: "d-2", Status: "planned"})
	require.Equal(t, 2, two[0].PolicyVersion)
	require.Equal(t, t0.Add(21*day), two[0].DueAt, "v2: every 2 weeks")

	_, err = b.a.SetActive(b.ctx, "default", "p-care", false)
	require.NoError(t, err)
	require.Equal(t, 1, fire(t, b, t0.Add(14*day)))
	require.Empty(t, visits(t, b, app.VisitQuery{ServiceID: "d-1", Status: "planned"}), "a deactivated policy's series stops")
	_, err = b.a.SetActive(b.ctx, policy.AllTenants, "builtin-appliance-purchase", false)
	require.ErrorIs(t, err, policy.ErrBuiltin, "the built-in itself is switched per tenant only")
}

// Contact policy across every program: 1 call in 3 days per customer; the second call moves and says why.
func TestFrequencyCapAcrossPolicies(t *testing.T) {
	b := setup(t)
	_, err := b.a.SetContactPolicy(b.ctx, "default", contact.Rules{Caps: []contact.Cap{{Channel: policy.ChannelPhone, Max: 1, Per: policy.Duration(3 * day)}}}, "")
	require.NoError(t, err)
	a := policy.Policy{ID: "a", Tenant: "default", Name: "a", Version: 1, Active: true, CreatedAt: t0, Trigger: policy.Trigger{ServiceTypes: []string{"repair"}},
		Steps: []policy.Step{{Channel: policy.ChannelPhone, SampleRate: 1, Window: policy.Duration(5 * day)}}}
	p := a
	p.ID, p.Name = "b", "b"
	require.NoError(t, store.InsertPolicy(b.ctx, b.pool, a))
	require.NoError(t, store.InsertPolicy(b.ctx, b.pool, p))
	plan(t, b, completed(t, "r-1", "repair", t0))
	require.Equal(t, 2, fire(t, b, t0))
	require.Len(t, visits(t, b, app.VisitQuery{Status: "due"}), 1)
	moved := visits(t, b, app.VisitQuery{Status: "planned"})
	require.Len(t, moved, 1)
	require.Equal(t, t0.Add(3*day), moved[0].DueAt)
	require.Contains(t, moved[0].Reason, "cap 1 CHANNEL_PHONE per 3d")
	require.Equal(t, policy.KindCap, moved[0].Decisions[len(moved[0].Decisions)-1].Kind)
	require.Zero(t, fire(t, b, t0.Add(2*day)))
	require.Equal(t, 1, fire(t, b, t0.Add(3*day)))
}

// Opt-outs (ContactOptedOut) cancel the customer's pending visits on the channel and say why;
// CustomerUpdated keeps the newest version of the preferences.
func TestOptOutAndCustomerPreferences(t *testing.T) {
	b := setup(t)
	plan(t, b, completed(t, "s-1", "purchase", t0))
	n, err := b.a.OptOut(b.ctx, app.OptOut{Tenant: "default", CustomerID: "cust-s-1", Channel: policy.ChannelPhone, At: t0.Add(time.Hour)})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	vs := visits(t, b, app.VisitQuery{ServiceID: "s-1"})
	require.Equal(t, "cancelled", vs[0].Status)
	require.Equal(t, "customer opted out of CHANNEL_PHONE", vs[0].Reason)
	require.Equal(t, 1, outboxCount(t, b, stream.SubjectVisitCancelled))
	// a later service of the same customer is suppressed at fire time.
	plan(t, b, completed(t, "s-2", "purchase", t0.Add(day)))
	require.NoError(t, b.a.UpdateCustomer(b.ctx, app.CustomerUpdate{Tenant: "default", Version: 3, At: t0,
		Customer: customer(t, &typesv1.Customer{Id: "cust-s-2", Preferences: &typesv1.ContactPreferences{DislikesCalls: true}})}))
	require.NoError(t, b.a.UpdateCustomer(b.ctx, app.CustomerUpdate{Tenant: "default", Version: 2, At: t0,
		Customer: customer(t, &typesv1.Customer{Id: "cust-s-2"})}))
	var dislikes bool
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT (prefs->>'dislikes_calls')::bool FROM customers WHERE customer_id = 'cust-s-2'`).Scan(&dislikes))
	require.True(t, dislikes, "an older CustomerUpdated never overwrites a newer one")
}

// Stop conditions: the customer came in; a resolved complaint plans its confirmation (seed 003:
// within 48 hours) and the due visit names the complaint; feedback's follow-up rounds (seed 004).
func TestStopsComplaintsAndFollowUps(t *testing.T) {
	b := setup(t)
	p := weekly("p-remind", "remind")
	p.Stop = policy.Stop{ServiceTypes: []string{"maintenance"}}
	require.NoError(t, store.InsertPolicy(b.ctx, b.pool, p))
	d := completed(t, "d-1", "delivery", t0)
	plan(t, b, d)
	m := completed(t, "m-1", "maintenance", t0.Add(2*day))
	m.Service.CustomerID, m.Customer = d.Service.CustomerID, d.Customer
	plan(t, b, m)
	vs := visits(t, b, app.VisitQuery{ServiceID: "d-1"})
	require.Equal(t, "cancelled", vs[0].Status)
	require.Contains(t, vs[0].Reason, "the customer came in (maintenance")

	n, err := b.a.PlanComplaintResolved(b.ctx, app.ComplaintResolved{Tenant: "default", ComplaintID: "cp-1", CustomerID: "cust-x", ResolvedAt: t0,
		Severity: int32(typesv1.Severity_SEVERITY_MAJOR), Customer: customer(t, &typesv1.Customer{Id: "cust-x", Phone: "+8613800000000"})})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	cv := visits(t, b, app.VisitQuery{PolicyID: "builtin-complaint-resolved"})
	require.Len(t, cv, 1)
	require.Equal(t, t0, cv[0].DueAt)
	require.Equal(t, t0.Add(48*time.Hour), cv[0].Deadline)
	fire(t, b, t0)
	dues := dueEvents(t, b)
	require.Len(t, dues, 1)
	require.Equal(t, "cp-1", dues[0].ComplaintId)
	require.Equal(t, typesv1.Severity_SEVERITY_MAJOR, dues[0].Severity)

	b.clock.set(t0)
	for round := range 2 {
		_, err := b.a.PlanFollowUp(b.ctx, app.FollowUp{Tenant: "default", CustomerID: "cust-x", ComplaintID: "cp-1",
			Request: engine.Request{Reason: "not satisfied", Due: t0.Add(time.Duration(round+1) * day), Group: "supervisor"}})
		require.NoError(t, err)
	}
	fu := visits(t, b, app.VisitQuery{PolicyID: policy.FollowUpID})
	require.Len(t, fu, 2, "one visit per round until settled")
	require.Equal(t, "supervisor", fu[1].Group)
	require.Equal(t, 1, fu[1].Occurrence)
	require.Equal(t, int32(policy.ChannelOnsite), fu[0].Channel, "seed 000: a major complaint is followed up on site, not by phone")
}

// A tenant's contact windows apply when a visit is planned: the move is recorded.
func TestWindowsMoveVisitsWhenPlanned(t *testing.T) {
	b := setup(t)
	r := contact.Preset002()
	r.TimeZone = "Asia/Shanghai"
	_, err := b.a.SetContactPolicy(b.ctx, "default", r, "")
	require.NoError(t, err)
	plan(t, b, completed(t, "s-1", "purchase", t0)) // due t0+1d = 18:00 in Shanghai
	v := visits(t, b, app.VisitQuery{ServiceID: "s-1"})[0]
	require.Equal(t, time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC), v.DueAt, "10:00 the next morning in Shanghai")
	require.Equal(t, t0.Add(day), v.Nominal)
	require.Equal(t, policy.KindWindow, v.Decisions[len(v.Decisions)-1].Kind)
}

// Seed 000 (property): anonymous complaints, or ones where only a written reply was asked for, need no follow-up.
func TestAnonymousComplaintsNeedNoFollowUp(t *testing.T) {
	b := setup(t)
	p := policy.Policy{ID: "cc", Tenant: "default", Name: "cc", Version: 1, Active: true, CreatedAt: t0, Trigger: policy.Trigger{ServiceTypes: []string{"complaint_closed"}},
		Steps: []policy.Step{{Channel: policy.ChannelPhone, SampleRate: 1, Window: policy.Duration(3 * day)}}}
	require.NoError(t, store.InsertPolicy(b.ctx, b.pool, p))
	for i, c := range []*typesv1.Complaint{{Reference: "a", Anonymous: true}, {Reference: "w", WrittenReplyOnly: true}, {Reference: "n", Severity: typesv1.Severity_SEVERITY_URGENT}} {
		in := completed(t, "c-"+c.Reference, "complaint_closed", t0)
		in.ComplaintID, in.Severity, in.Anonymous, in.WrittenReplyOnly = c.Reference, int32(c.Severity), c.Anonymous, c.WrittenReplyOnly
		in.Service.Severity = []string{"", "", "urgent"}[i]
		require.Equal(t, []int{0, 0, 1}[i], plan(t, b, in))
	}
	vs := visits(t, b, app.VisitQuery{ServiceID: "c-a"})
	require.Equal(t, "suppressed", vs[0].Status)
	require.Contains(t, vs[0].Reason, "anonymous")
}

// Stop condition "answered": a logged visit of a series ends the rest of it.
func TestAnsweredVisitEndsTheSeries(t *testing.T) {
	b := setup(t)
	p := weekly("p-lead", "lead")
	p.Stop = policy.Stop{Answered: true}
	require.NoError(t, store.InsertPolicy(b.ctx, b.pool, p))
	plan(t, b, completed(t, "d-1", "delivery", t0))
	require.Equal(t, 1, fire(t, b, t0.Add(7*day)))
	first := visits(t, b, app.VisitQuery{ServiceID: "d-1", Status: "due"})[0]
	require.Len(t, visits(t, b, app.VisitQuery{ServiceID: "d-1", Status: "planned"}), 1)
	n, err := b.a.StopAnswered(b.ctx, app.Answered{Tenant: "default", VisitID: first.ID, At: t0.Add(8 * day)})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Empty(t, visits(t, b, app.VisitQuery{ServiceID: "d-1", Status: "planned"}))
}

// Seed 000: an anonymous complaint, or one where only a written reply was
// requested, gets no follow-up: its confirmation visit is kept as suppressed.
func TestNoFollowUpForWrittenReplyOnlyComplaints(t *testing.T) {
	b := setup(t)
	n, err := b.a.PlanComplaintResolved(b.ctx, app.ComplaintResolved{Tenant: "default", ComplaintID: "cp-w", CustomerID: "cust-w", ResolvedAt: t0,
		NoFollowUp: true, Customer: customer(t, &typesv1.Customer{Id: "cust-w", Phone: "+8613800000000"})})
	require.NoError(t, err)
	require.Zero(t, n)
	cv := visits(t, b, app.VisitQuery{PolicyID: "builtin-complaint-resolved"})
	require.Len(t, cv, 1)
	require.Equal(t, "suppressed", cv[0].Status)
	require.Contains(t, cv[0].Reason, "written-reply-only")
	fire(t, b, t0.Add(time.Hour))
	require.Zero(t, outboxCount(t, b, stream.SubjectVisitDue))
}

// Every opt-out is recorded with its source and time (seed 004, PIPL: a
// withdrawn consent is kept on record): the first word per channel stays.
func TestOptOutsAreRecordedWithSourceAndTime(t *testing.T) {
	b := setup(t)
	plan(t, b, completed(t, "s-1", "purchase", t0))
	_, err := b.a.OptOut(b.ctx, app.OptOut{Tenant: "default", CustomerID: "cust-s-1", Channel: policy.ChannelPhone, At: t0.Add(time.Hour),
		Source: "dispatch: asked to stop during visit v-1"})
	require.NoError(t, err)
	require.NoError(t, b.a.UpdateCustomer(b.ctx, app.CustomerUpdate{Tenant: "default", Version: 4, At: t0.Add(2 * time.Hour),
		Customer: customer(t, &typesv1.Customer{Id: "cust-s-1", Preferences: &typesv1.ContactPreferences{
			OptedOut: []typesv1.Channel{typesv1.Channel_CHANNEL_PHONE, typesv1.Channel_CHANNEL_SMS}}})}))
	// Intake's erasure carries every channel opted out in its preferences.
	require.NoError(t, b.a.UpdateCustomer(b.ctx, app.CustomerUpdate{Tenant: "default", Version: 5, At: t0.Add(3 * time.Hour), Erased: true,
		Customer: customer(t, &typesv1.Customer{Id: "cust-s-1", Preferences: &typesv1.ContactPreferences{OptedOut: []typesv1.Channel{
			typesv1.Channel_CHANNEL_PHONE, typesv1.Channel_CHANNEL_SMS, typesv1.Channel_CHANNEL_ONSITE, typesv1.Channel_CHANNEL_EMAIL, typesv1.Channel_CHANNEL_WEB}}})}))

	rows, err := b.pool.Query(b.ctx, `SELECT channel, source, opted_out_at FROM opt_outs WHERE tenant_id = 'default' AND customer_id = 'cust-s-1' ORDER BY opted_out_at, channel`)
	require.NoError(t, err)
	type rec struct {
		Channel, Source string
		At              time.Time
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[rec])
	require.NoError(t, err)
	for i := range got {
		got[i].At = got[i].At.UTC()
	}
	require.Equal(t, []rec{
		{"CHANNEL_PHONE", "dispatch: asked to stop during visit v-1", t0.Add(time.Hour)},
		{"CHANNEL_SMS", "intake: CustomerUpdated, archive version 4", t0.Add(2 * time.Hour)},
		{"CHANNEL_EMAIL", "intake: erased, archive version 5", t0.Add(3 * time.Hour)},
		{"CHANNEL_ONSITE", "intake: erased, archive version 5", t0.Add(3 * time.Hour)},
		{"CHANNEL_WEB", "intake: erased, archive version 5", t0.Add(3 * time.Hour)},
	}, got)
}
