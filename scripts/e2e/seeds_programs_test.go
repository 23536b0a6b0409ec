package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/issuer"
)

// attrIngress is a completed service of a tenant as its upstream system
// sends it, with free-form attributes (a JSON object, "{}" for none) and a
// customer class ("" for none).
func attrIngress(tenantID, sourceEventID, serviceType, customerID, class, attributes string, completedAt time.Time) string {
	return fmt.Sprintf(`{"tenant_id":%q,"source_system":"erp-demo","source_event_id":%q,"service_type":%q,"completed_at":%q,"customer":{"external_id":%q,"name":"王芳","phone":"+8613700137001","tier":%q},"attributes":%s}`,
		tenantID, sourceEventID, serviceType, completedAt.UTC().Format(time.RFC3339), customerID, class, attributes)
}

// visitLine is one planned visit as the hand computations below write it:
// policy name, step and occurrence, channel, group, due time and deadline
// (UTC, to the minute).
func visitLine(policyName string, step, occ int32, ch typesv1.Channel, group string, due, deadline time.Time) string {
	return fmt.Sprintf("%s#%d.%d %s %s due=%s deadline=%s", policyName, step, occ, ch, group,
		due.UTC().Format("2006-01-02T15:04"), deadline.UTC().Format("2006-01-02T15:04"))
}

// visitLines lists the first visits a tenant's service has of the named
// policies (occurrence 0 of each step: a recurring series is one row at a
// time, and its next row appears only when the first falls due), sorted.
func (s *system) visitLines(tenantID, serviceID string, policies ...string) []string {
	s.t.Helper()
	names := map[string]string{}
	var out []string
	for _, v := range s.plannedVisitsOf(tenantID, serviceID) {
		name, ok := names[v.GetPolicyId()]
		if !ok {
			p, err := s.scheduler.GetPolicy(s.t.Context(), &schedulerv1.GetPolicyRequest{TenantId: tenantID, PolicyId: v.GetPolicyId(), Version: v.GetPolicyVersion()})
			require.NoError(s.t, err)
			name, names[v.GetPolicyId()] = p.GetPolicy().GetName(), p.GetPolicy().GetName()
		}
		if !slices.Contains(policies, name) || v.GetOccurrence() != 0 {
			continue
		}
		out = append(out, visitLine(name, v.GetStep(), 0, v.GetChannel(), v.GetGroup(), v.GetDueAt().AsTime(), v.GetDeadline().AsTime()))
	}
	slices.Sort(out)
	return out
}

// want writes one expected visit (occurrence 0).
func want(policyName string, step int32, ch typesv1.Channel, group string, due, deadline time.Time) string {
	return visitLine(policyName, step, 0, ch, group, due, deadline)
}

// addMonth is one calendar month later, on the month's last day when it
// has no such day (31 January → 28 February), as the seeds' "within a
// month" and "monthly" are counted (UTC: the tenants here set no zone).
func addMonth(t time.Time) time.Time {
	y, m, d := t.Date()
	last := time.Date(y, m+2, 0, 0, 0, 0, 0, time.UTC).Day()
	return time.Date(y, m+1, min(d, last), t.Hour(), t.Minute(), t.Second(), 0, time.UTC)
}

// midnight is the start of the day n days from now (UTC), and nine is 09:00
// of it: a visit due on a date is made at 09:00 when the tenant has no
// quiet hours (issue 16).
func midnight(n int) time.Time {
	y, m, d := time.Now().UTC().AddDate(0, 0, n).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func nine(n int) time.Time { return midnight(n).Add(9 * time.Hour) }

const (
	phoneCh  = typesv1.Channel_CHANNEL_PHONE
	smsCh    = typesv1.Channel_CHANNEL_SMS
	onsiteCh = typesv1.Channel_CHANNEL_ONSITE
)

// TestSeed000ProgramsThroughTheFrontDoor (issue 16, "programs of the seeds
// that no pack has"; seed 000): a property office, a cement plant and a car
// dealer load their packs, their systems send move-ins, incidents,
// deliveries and a service-festival campaign on the NATS ingress, and each
// program plans what a hand computation from the seed's rule says:
//   - property 1.6 "重点节日探望由公司经理组织进行,入伙回访、突发事件处理完毕后回访":
//     a call within a calendar month of moving in, within 72 h of an
//     incident's end, and the company manager on site on the holiday;
//   - cement logistics (回访制度新版) "回访频次每月不少于3次" and
//     "上门回访旳频次每月不少于一次": calls 1, 11 and 21 days after the first
//     delivery and an on-site check after 5, each repeated every calendar month;
//   - auto 7 "服务节活动提醒……提前一周内": the festival's SMS a week before
//     the customer's day and the booking call 5 days before.
func TestSeed000ProgramsThroughTheFrontDoor(t *testing.T) {
	s := setup(t, nil)
	ctx := t.Context()
	asOperator, err := s.issuer.Context(ctx, issuer.Operator())
	require.NoError(t, err)
	for tenantID, pack := range map[string]string{"mgmt": "property", "plant": "cement", "dealer": "auto"} {
		_, err := s.scheduler.LoadPolicyPack(asOperator, &schedulerv1.LoadPolicyPackRequest{TenantId: tenantID, Pack: pack})
		require.NoError(t, err, "LoadPolicyPack %s for %s", pack, tenantID)
	}
	_, err = s.scheduler.SetContactPolicy(ctx, &schedulerv1.SetContactPolicyRequest{TenantId: "mgmt", ContactPolicy: &schedulerv1.ContactPolicy{
		Holidays: []string{midnight(5).Format(time.DateOnly)},
	}})
	require.NoError(t, err)

	completed := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	festival := midnight(10)
	s.publish(attrIngress("mgmt", "movein-1", "move_in", "r-1", "", "{}", completed))
	s.publish(attrIngress("mgmt", "incident-1", "incident_closed", "r-2", "", "{}", completed))
	s.publish(attrIngress("plant", "delivery-1", "delivery", "k-1", "", "{}", completed))
	s.publish(attrIngress("dealer", "festival-1", "campaign", "car-1", "",
		fmt.Sprintf(`{"campaign":"service_festival","event_date":%q}`, festival.Format(time.DateOnly)), completed))

	cases := []struct {
		tenant, event string
		policies      []string
		want          []string
	}{
		{"mgmt", "movein-1", []string{"property-move-in", "property-holiday-visit"}, []string{
			want("property-move-in", 0, phoneCh, "property_assistant", completed, addMonth(completed)),
			want("property-holiday-visit", 0, onsiteCh, "company_manager", nine(5), midnight(6)),
		}},
		{"mgmt", "incident-1", []string{"property-incident", "property-holiday-visit"}, []string{
			want("property-incident", 0, phoneCh, "property_assistant", completed, completed.Add(72*time.Hour)),
			want("property-holiday-visit", 0, onsiteCh, "company_manager", nine(5), midnight(6)),
		}},
		{"plant", "delivery-1", []string{"cement-logistics-monthly"}, []string{
			want("cement-logistics-monthly", 0, phoneCh, "logistics", completed.Add(24*time.Hour), completed.Add(72*time.Hour)),
			want("cement-logistics-monthly", 1, phoneCh, "logistics", completed.Add(11*24*time.Hour), completed.Add(13*24*time.Hour)),
			want("cement-logistics-monthly", 2, phoneCh, "logistics", completed.Add(21*24*time.Hour), completed.Add(23*24*time.Hour)),
			want("cement-logistics-monthly", 3, onsiteCh, "logistics_onsite", completed.Add(5*24*time.Hour), completed.Add(12*24*time.Hour)),
		}},
		{"dealer", "festival-1", []string{"auto-service-festival", "auto-promotion", "auto-loyalty-event"}, []string{
			want("auto-service-festival", 0, smsCh, "crm", nine(3), midnight(9)),
			want("auto-service-festival", 1, phoneCh, "crm", nine(5), midnight(8)),
		}},
	}
	services := map[string]string{}
	for _, c := range cases {
		services[c.event] = s.serviceID(c.event)
		waitFor(t, taskDeadline, "the visits of "+c.event, func() (bool, bool, error) {
			return true, len(s.visitLines(c.tenant, services[c.event], c.policies...)) >= len(c.want), nil
		})
	}
	s.drained()
	for _, c := range cases {
		w := slices.Clone(c.want)
		slices.Sort(w)
		require.Equal(t, w, s.visitLines(c.tenant, services[c.event], c.policies...), c.event)
	}
}

// TestSeed002ProgramsThroughTheFrontDoor (issue 16: "milestones for class
// D, VIP advance notice and holiday SMS to all"; seed 002 第3篇): the
// developer's CRM sends a class D visitor, a referred VIP and a buyer on
// the ingress; the hand computation from the seed:
//   - 第二条(二)1 "只在项目重要节点时,如开盘、优惠、活动、样板房开放等,提前以电话或短信的方式向客户告知":
//     the VIP is called 3 days before the launch (09:00, timely for 2 days),
//     and not for the topping-out;
//   - 第二条(一)5 "d类客户在重要节点及节日给予祝福,多以短信形势维护": the D
//     visitor gets an SMS on the launch, the first milestone ahead;
//   - 第四条1 "节假日必须回访客户,给客户发祝福短信": each of the three gets
//     one SMS on the holiday, whatever programs enrolled them, the buyer
//     none from the buyer's program.
func TestSeed002ProgramsThroughTheFrontDoor(t *testing.T) {
	s := setup(t, nil)
	ctx := t.Context()
	asOperator, err := s.issuer.Context(ctx, issuer.Operator())
	require.NoError(t, err)
	_, err = s.scheduler.LoadPolicyPack(asOperator, &schedulerv1.LoadPolicyPackRequest{TenantId: "estate", Pack: "realestate"})
	require.NoError(t, err)
	_, err = s.scheduler.SetContactPolicy(ctx, &schedulerv1.SetContactPolicyRequest{TenantId: "estate", ContactPolicy: &schedulerv1.ContactPolicy{
		Holidays:   []string{midnight(6).Format(time.DateOnly)},
		Milestones: []*schedulerv1.Milestone{{Date: midnight(10).Format(time.DateOnly), Kind: "launch", Name: "开盘"}, {Date: midnight(20).Format(time.DateOnly), Kind: "construction", Name: "封顶"}},
	}})
	require.NoError(t, err)

	completed := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	s.publish(attrIngress("estate", "visit-d", "showroom_visit", "d-1", "D", "{}", completed))
	s.publish(attrIngress("estate", "referral-vip", "referral", "vip-1", "VIP", "{}", completed))
	s.publish(attrIngress("estate", "purchase-1", "purchase", "buyer-1", "", "{}", completed))

	holiday := want("realestate-holidays", 0, smsCh, "sales_advisor", nine(6), midnight(7))
	programs := []string{"realestate-visitor-d", "realestate-referred-vip", "realestate-holidays", "realestate-holiday-call-key"}
	cases := map[string][]string{
		"visit-d": {holiday, want("realestate-visitor-d", 0, smsCh, "sales_advisor", nine(10), midnight(11))},
		"referral-vip": {holiday,
			// 3 days before the launch: midnight(7), made at 09:00; timely until midnight(7) + 2 days.
			want("realestate-referred-vip", 0, phoneCh, "sales_advisor", nine(7), midnight(9))},
		"purchase-1": {holiday},
	}
	services := map[string]string{}
	for event, w := range cases {
		services[event] = s.serviceID(event)
		waitFor(t, taskDeadline, "the visits of "+event, func() (bool, bool, error) {
			return true, len(s.visitLines("estate", services[event], programs...)) >= len(w), nil
		})
	}
	s.drained()
	for event, w := range cases {
		w = slices.Clone(w)
		slices.Sort(w)
		require.Equal(t, w, s.visitLines("estate", services[event], programs...), event)
	}
	buyer := s.visitsByPolicy("estate", services["purchase-1"])
	require.Equal(t, 1, buyer["realestate-holidays"], "the buyer's holiday SMS comes once, from realestate-holidays")
	require.NotContains(t, buyer, "realestate-holiday-call-key", "the buyer is not class A")
}
