package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/services/analytics/internal/app"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
)

// Seed 000 (cement logistics, 回访制度新版): each day the agent calls the
// recipients of the previous day's deliveries to confirm product and
// quantity; a mismatch goes to the general manager at once; a written
// report after each round. The round of 2026-05-07 (Asia/Shanghai) of the
// policy cement-delivery-confirmation: five deliveries of 05-06 due at
// 09:00, one of another policy, one of another day, one cancelled.
func TestRoundReport(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	cst := time.FixedZone("CST", 8*3600)
	day := time.Date(2026, 5, 7, 0, 0, 0, 0, cst)
	at := func(h int) *timestamppb.Timestamp { return timestamppb.New(day.Add(time.Duration(h) * time.Hour)) }
	yes, no := true, false
	due := func(visit, policy, service, customer, masked, unit string, h int) *eventsv1.VisitDue {
		return &eventsv1.VisitDue{TenantId: "cement", VisitId: visit, PolicyId: policy, ServiceId: service, ServiceType: "delivery", Group: "logistics",
			DueAt: at(h), OrgUnit: unit, Channel: typesv1.Channel_CHANNEL_PHONE, Customer: &typesv1.Customer{Id: customer, NameMasked: masked}}
	}
	logged := func(visit, record, agent string, product, quantity *bool) *eventsv1.VisitLogged {
		var as []*typesv1.Answer
		if product != nil {
			as = append(as, &typesv1.Answer{Aspect: rollup.AspectProductMatches, Yes: product})
		}
		if quantity != nil {
			as = append(as, &typesv1.Answer{Aspect: rollup.AspectQuantityMatches, Yes: quantity})
		}
		return &eventsv1.VisitLogged{TenantId: "cement", VisitId: visit, RecordId: record, AgentId: agent, LoggedAt: at(10), ServiceType: "delivery",
			PolicyId: "p-confirm", Answers: as}
	}
	events := []proto.Message{
		due("v-1", "p-confirm", "DR-0501", "c-1", "王*", "east", 9),
		due("v-2", "p-confirm", "DR-0502", "c-2", "李*", "east", 9),
		due("v-3", "p-confirm", "DR-0503", "c-3", "张*", "east", 9),
		due("v-4", "p-confirm", "DR-0504", "c-4", "赵*", "east", 9),
		due("v-5", "p-confirm", "DR-0505", "c-5", "陈*", "west", 9),
		due("v-other-policy", "p-monthly", "DR-0501", "c-1", "王*", "east", 9),
		due("v-next-day", "p-confirm", "DR-0601", "c-1", "王*", "east", 33),
		due("v-cancelled", "p-confirm", "DR-0506", "c-6", "周*", "east", 9),
		&eventsv1.VisitCancelled{TenantId: "cement", VisitId: "v-cancelled"},
		&eventsv1.VisitAssigned{TenantId: "cement", VisitId: "v-1", AgentId: "a-1"},
		&eventsv1.VisitAssigned{TenantId: "cement", VisitId: "v-2", AgentId: "a-1"},
		&eventsv1.VisitAssigned{TenantId: "cement", VisitId: "v-3", AgentId: "a-2"},
		// 王* confirmed both; 李* got fewer bags than the receipt: a "no"
		// opens a delivery_mismatch complaint for the general manager, who
		// acknowledged it.
		logged("v-1", "r-1", "a-1", &yes, &yes),
		logged("v-2", "r-2", "a-1", &yes, &no),
		&eventsv1.ComplaintEscalated{TenantId: "cement", ComplaintId: "k-2", VisitId: "v-2", Category: rollup.MismatchCategory,
			Department: app.GeneralManager, Severity: "urgent", EscalatedAt: at(10), OrgUnit: "east"},
		&eventsv1.ComplaintAcknowledged{TenantId: "cement", ComplaintId: "k-2", At: at(11)},
		// 张* could not be reached after three attempts; 赵* not called yet.
		&eventsv1.VisitAttempted{TenantId: "cement", VisitId: "v-3", AgentId: "a-2", Disposition: typesv1.Disposition_DISPOSITION_NO_ANSWER},
		&eventsv1.VisitUnreachable{TenantId: "cement", VisitId: "v-3", OrgUnit: "east"},
		// 陈* (west) reached, the product was not answered.
		logged("v-5", "r-5", "a-3", nil, &yes),
	}
	for _, ev := range events {
		require.NoError(t, b.app.ApplyEvent(ctx, ev))
	}
	require.NoError(t, b.app.ApplyEvent(ctx, events[0]), "a redelivered VisitDue changes nothing")

	as := func(p auth.Principal) context.Context { p.Tenant = "cement"; return auth.With(ctx, p) }
	director := as(auth.Principal{Subject: "kc-director", Roles: []auth.Role{auth.Director}})
	r, err := b.app.RoundReport(director, app.RoundOf{Tenant: "cement", PolicyID: "p-confirm", DayStart: day, Format: "csv"})
	require.NoError(t, err)
	var got []string
	for _, v := range r.Visits {
		got = append(got, v.VisitID+" "+v.Status())
	}
	require.Equal(t, []string{"v-1 confirmed", "v-2 mismatch", "v-3 unreachable", "v-4 not_made", "v-5 unconfirmed"}, got)
	require.Equal(t, "k-2", r.Visits[1].ComplaintID)
	require.Equal(t, "acknowledged", r.Visits[1].ComplaintState)
	require.Equal(t, "a-2", r.Visits[2].AgentID)
	require.True(t, r.Visits[2].Attempted)
	c := r.Counts()
	require.Equal(t, 5, c.Due)
	require.Equal(t, 3, c.Reached)
	require.Equal(t, 1, c.Confirmed)
	require.Equal(t, 1, c.Mismatches)
	require.Equal(t, 1, c.Unreachable)
	require.Equal(t, 1, c.NotMade)

	csv, err := r.CSV()
	require.NoError(t, err)
	require.Contains(t, string(csv), "count,mismatches,1,")
	require.Contains(t, string(csv), "delivery,李*,mismatch,DR-0502,yes,no,k-2,acknowledged,a-1,v-2\n")
	require.Contains(t, string(csv), "caller,a-1,assigned 2; reached 2; confirmed 1; mismatches 1,")
	html, err := r.HTML()
	require.NoError(t, err)
	require.Contains(t, string(html), `<td>李*</td><td>DR-0502</td><td class="">yes</td><td class="bad">no</td><td>k-2</td><td>acknowledged</td><td>a-1</td>`)
	require.Contains(t, string(html), "<td>张*</td><td>DR-0503</td><td>unreachable</td><td>yes</td><td>a-2</td>")
	require.Equal(t, "huifang-round-cement-all-p-confirm-20260506T1600Z", r.Name())

	// The general manager's department owner reads it; a leader its org
	// unit only; another department's owner, an agent's unit, none.
	gm := as(auth.Principal{Subject: "kc-gm", Roles: []auth.Role{auth.DepartmentOwner}, Departments: []string{app.GeneralManager}})
	r, err = b.app.RoundReport(gm, app.RoundOf{Tenant: "cement", PolicyID: "p-confirm", DayStart: day})
	require.NoError(t, err)
	require.Len(t, r.Visits, 5)
	leader := as(auth.Principal{Subject: "kc-leader", Roles: []auth.Role{auth.Leader}, OrgUnits: []string{"east"}})
	r, err = b.app.RoundReport(leader, app.RoundOf{Tenant: "cement", OrgUnit: "east", PolicyID: "p-confirm", DayStart: day})
	require.NoError(t, err)
	require.Len(t, r.Visits, 4, "west's delivery is not east's")
	for name, tc := range map[string]struct {
		ctx  context.Context
		unit string
	}{
		"leader, all units":    {leader, ""},
		"leader, another unit": {leader, "west"},
		"owner of after-sales": {as(auth.Principal{Subject: "kc-as", Roles: []auth.Role{auth.DepartmentOwner}, Departments: []string{"after_sales"}}), ""},
	} {
		_, err := b.app.RoundReport(tc.ctx, app.RoundOf{Tenant: "cement", OrgUnit: tc.unit, PolicyID: "p-confirm", DayStart: day})
		require.True(t, errors.Is(err, auth.ErrPermissionDenied), name)
	}

	// The erased customer's masked name goes; the row stays.
	require.NoError(t, b.app.ApplyEvent(ctx, &eventsv1.CustomerUpdated{TenantId: "cement", Customer: &typesv1.Customer{Id: "c-2"}, Erased: true, Version: 3}))
	r, err = b.app.RoundReport(director, app.RoundOf{Tenant: "cement", PolicyID: "p-confirm", DayStart: day})
	require.NoError(t, err)
	require.Len(t, r.Visits, 5)
	require.Empty(t, r.Visits[1].NameMasked)
	require.Equal(t, rollup.RoundMismatch, r.Visits[1].Status())
}
