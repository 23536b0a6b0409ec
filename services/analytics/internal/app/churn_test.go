package app_test

import (
	"context"
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

// Seed 000 (auto dealer): "each quarter, list vehicles with no maintenance
// or repair visit for 6+ months, assign them to agents, find the reason,
// record it, report, win them back (attach the 'churned customer analysis'
// table: name, model, plate, last visit, advisor, reason, remedy)". The
// quarter's report lists the churn calls due in it, longest absent first,
// with the car and advisor of the last visit and the reason and remedy the
// agent recorded; names and plates masked. Other visits are not listed.
func TestChurnedCustomerTable(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	ts := func(y int, m time.Month, d int) *timestamppb.Timestamp {
		return timestamppb.New(time.Date(y, m, d, 9, 0, 0, 0, time.UTC))
	}
	customer := func(id, masked string) *typesv1.Customer {
		return &typesv1.Customer{Id: id, NameMasked: masked}
	}
	events := []proto.Message{
		// 张伟's Lavida, last in for a repair in March; 李娜's Passat, last maintained in February.
		&eventsv1.ServiceCompleted{TenantId: "dealer", ServiceId: "s-zhang", ServiceType: "repair", CompletedAt: ts(2026, 3, 20), StaffId: "adv-wang",
			OrgUnit: "north", Customer: customer("c-zhang", "张*"), Vehicle: &typesv1.Vehicle{Vin: "LSVAM4187C2184847", Plate: "沪A12345", Model: "Lavida"}},
		&eventsv1.ServiceCompleted{TenantId: "dealer", ServiceId: "s-li", ServiceType: "maintenance", CompletedAt: ts(2026, 2, 5), StaffId: "adv-chen",
			OrgUnit: "north", Customer: customer("c-li", "李*"), Vehicle: &typesv1.Vehicle{Plate: "沪B67890", Model: "Passat"}},
		// The churn calls at the start of the fourth quarter (auto-churn: group churn_recovery).
		&eventsv1.VisitDue{TenantId: "dealer", VisitId: "v-zhang", ServiceId: "s-zhang", Group: rollup.ChurnGroup, DueAt: ts(2026, 10, 1),
			ServiceCompletedAt: ts(2026, 3, 20), OrgUnit: "north", Customer: customer("c-zhang", "张*"), ServiceType: "repair"},
		&eventsv1.VisitDue{TenantId: "dealer", VisitId: "v-li", ServiceId: "s-li", Group: rollup.ChurnGroup, DueAt: ts(2026, 10, 1),
			ServiceCompletedAt: ts(2026, 2, 5), OrgUnit: "north", Customer: customer("c-li", "李*"), ServiceType: "maintenance"},
		// A survey call is not a churn case.
		&eventsv1.VisitDue{TenantId: "dealer", VisitId: "v-survey", ServiceId: "s-zhang", Group: "service_survey", DueAt: ts(2026, 10, 2),
			ServiceCompletedAt: ts(2026, 3, 20), OrgUnit: "north", Customer: customer("c-zhang", "张*"), ServiceType: "repair"},
		// The agent found 李娜's reason and remedy; 张伟 was not reached yet.
		&eventsv1.VisitLogged{TenantId: "dealer", VisitId: "v-li", RecordId: "r-li", AgentId: "a-1", LoggedAt: ts(2026, 10, 2),
			Answers: []*typesv1.Answer{{Aspect: rollup.AspectChurnReason, Choice: "price"}, {Aspect: rollup.AspectChurnRemedy, Choice: "maintenance_coupon"}}},
		&eventsv1.VisitLogged{TenantId: "dealer", VisitId: "v-survey", RecordId: "r-s", AgentId: "a-2", LoggedAt: ts(2026, 10, 2),
			Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}}},
	}
	for _, ev := range events {
		require.NoError(t, b.app.ApplyEvent(ctx, ev))
	}
	require.NoError(t, b.app.ApplyEvent(ctx, events[3]), "a redelivered VisitDue changes nothing")

	director := auth.With(ctx, auth.Principal{Subject: "kc-director", Tenant: "dealer", Roles: []auth.Role{auth.Director}, AgentID: "d-1"})
	q4 := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	r, err := b.app.Report(director, app.ReportOf{Tenant: "dealer", From: q4, To: q4.AddDate(0, 3, 0), Format: "csv"})
	require.NoError(t, err)
	at := func(m time.Month, d int) time.Time { return time.Date(2026, m, d, 9, 0, 0, 0, time.UTC) }
	require.Equal(t, []rollup.ChurnCase{
		{Tenant: "dealer", VisitID: "v-li", ServiceID: "s-li", CustomerID: "c-li", NameMasked: "李*", OrgUnit: "north", DueAt: at(10, 1), LastVisitAt: at(2, 5),
			Model: "Passat", PlateMasked: "沪B***90", Advisor: "adv-chen", AgentID: "a-1", RecordID: "r-li", LoggedAt: at(10, 2), Reason: "price", Remedy: "maintenance_coupon"},
		{Tenant: "dealer", VisitID: "v-zhang", ServiceID: "s-zhang", CustomerID: "c-zhang", NameMasked: "张*", OrgUnit: "north", DueAt: at(10, 1), LastVisitAt: at(3, 20),
			Model: "Lavida", PlateMasked: "沪A***45", Advisor: "adv-wang"},
	}, r.Churn)

	csv, err := r.CSV()
	require.NoError(t, err)
	require.Contains(t, string(csv), "churned_customer,李*,,,,,,model Passat; plate 沪B***90; last visit 2026-02-05; advisor adv-chen; reason price; remedy maintenance_coupon; customer c-li; agent a-1; record r-li; visit v-li")
	require.Contains(t, string(csv), "churned_customer,张*,,,,,,model Lavida; plate 沪A***45; last visit 2026-03-20; advisor adv-wang; reason -; remedy -;")
	html, err := r.HTML()
	require.NoError(t, err)
	require.Contains(t, string(html), "<td>李*</td><td>Passat</td><td>沪B***90</td><td>2026-02-05</td><td>adv-chen</td><td>price</td><td>maintenance_coupon</td>")
	for _, clear := range []string{"沪A12345", "沪B67890", "LSVAM4187C2184847"} {
		require.NotContains(t, string(csv), clear)
		require.NotContains(t, string(html), clear)
	}

	// 张伟 is erased (intake's EraseCustomer, on customer.erased): the
	// masked name goes, the row stays.
	require.NoError(t, b.app.ApplyEvent(ctx, &eventsv1.CustomerUpdated{TenantId: "dealer", Customer: &typesv1.Customer{Id: "c-zhang"}, Erased: true, Version: 9}))
	require.NoError(t, b.app.ApplyEvent(ctx, &eventsv1.CustomerUpdated{TenantId: "dealer", Customer: &typesv1.Customer{Id: "c-li"}, Version: 9}),
		"a CustomerUpdated that is no erasure changes nothing")
	r, err = b.app.Report(director, app.ReportOf{Tenant: "dealer", From: q4, To: q4.AddDate(0, 3, 0), Format: "csv"})
	require.NoError(t, err)
	require.Len(t, r.Churn, 2)
	require.Equal(t, "李*", r.Churn[0].NameMasked)
	require.Empty(t, r.Churn[1].NameMasked, "privacy.md: an erasure drops the masked forms")
	require.Equal(t, "c-zhang", r.Churn[1].CustomerID)

	// Another quarter, another org unit: not listed.
	r, err = b.app.Report(director, app.ReportOf{Tenant: "dealer", From: q4.AddDate(0, -3, 0), To: q4})
	require.NoError(t, err)
	require.Empty(t, r.Churn)
	r, err = b.app.Report(director, app.ReportOf{Tenant: "dealer", OrgUnit: "south", From: q4, To: q4.AddDate(0, 3, 0)})
	require.NoError(t, err)
	require.Empty(t, r.Churn)
}

func TestMaskPlate(t *testing.T) {
	for in, want := range map[string]string{"沪A12345": "沪A***45", " 粤B·D12345 ": "粤B***45", "AB1": "A***", "": ""} {
		require.Equal(t, want, rollup.MaskPlate(in), in)
	}
}

// A record logged after the report's period is not shown in it: the
// period's table reads the same when made again later.
func TestChurnedCustomerTableAsOfPeriodEnd(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	due := time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)
	require.NoError(t, b.app.ApplyEvent(ctx, &eventsv1.VisitDue{TenantId: "dealer", VisitId: "v", ServiceId: "s", Group: rollup.ChurnGroup,
		DueAt: timestamppb.New(due), Customer: &typesv1.Customer{Id: "c", NameMasked: "王*"}}))
	require.NoError(t, b.app.ApplyEvent(ctx, &eventsv1.VisitLogged{TenantId: "dealer", VisitId: "v", RecordId: "r", AgentId: "a-1",
		LoggedAt: timestamppb.New(due.AddDate(0, 1, 0)), Answers: []*typesv1.Answer{{Aspect: rollup.AspectChurnReason, Choice: "moved_away"}}}))
	director := auth.With(ctx, auth.Principal{Subject: "kc-director", Tenant: "dealer", Roles: []auth.Role{auth.Director}})
	from := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	r, err := b.app.Report(director, app.ReportOf{Tenant: "dealer", From: from, To: from.AddDate(0, 0, 7)})
	require.NoError(t, err)
	require.Len(t, r.Churn, 1)
	require.Empty(t, r.Churn[0].Reason, "logged after the week")
	r, err = b.app.Report(director, app.ReportOf{Tenant: "dealer", From: from, To: from.AddDate(0, 3, 0)})
	require.NoError(t, err)
	require.Equal(t, "moved_away", r.Churn[0].Reason)
	require.Empty(t, r.Churn[0].Remedy, "no remedy recorded")
}
