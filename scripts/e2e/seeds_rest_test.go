package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"
	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

// The rest of issue 16 item 1's programs, each fed through the front door
// (services on the NATS ingress, gRPC calls with tokens of the roles the
// seed's companies make them with) and compared with a hand computation.

// loadPackAs loads a pack for the desk's tenant as its administrator,
// without linking questionnaires (desk.loadPack links one to every
// policy), adds agents each of one group, and returns the pack's policy
// ids by name.
func (d *desk) loadPackAs(pack string, agentGroups map[string]string) map[string]string {
	t := d.s.t
	t.Helper()
	resp, err := d.s.scheduler.LoadPolicyPack(d.admin, &schedulerv1.LoadPolicyPackRequest{TenantId: d.tenant, Pack: pack})
	require.NoError(t, err, "LoadPolicyPack %s for %s", pack, d.tenant)
	ids := map[string]string{}
	for _, p := range resp.GetPolicies() {
		ids[p.GetName()] = p.GetId()
	}
	for a, group := range agentGroups {
		_, err := d.s.dispatch.UpsertAgent(d.admin, &dispatchv1.UpsertAgentRequest{Agent: &dispatchv1.Agent{Id: a, TenantId: d.tenant, Name: a, Groups: []string{group}}})
		require.NoError(t, err, "UpsertAgent %s", a)
	}
	return ids
}

// expectLines waits until the named policies planned as many first visits
// for the service of event as want has, then compares them.
func (s *system) expectLines(tenantID, event string, policies []string, want ...string) string {
	s.t.Helper()
	serviceID := s.serviceID(event)
	waitFor(s.t, taskDeadline, "the visits of "+event, func() (bool, bool, error) {
		return true, len(s.visitLines(tenantID, serviceID, policies...)) >= len(want), nil
	})
	want = slices.Clone(want)
	slices.Sort(want)
	require.Equal(s.t, want, s.visitLines(tenantID, serviceID, policies...), event)
	return serviceID
}

// quarterStart is midnight UTC of the first day of the quarter holding t.
func quarterStart(t time.Time) time.Time {
	y, m, _ := t.UTC().Date()
	return time.Date(y, ((m-1)/3)*3+1, 1, 0, 0, 0, 0, time.UTC)
}

// TestSeedRestHospitalAndDealer (issue 16 item 1; seed 000 患者回访工作制度
// and 售后电话回访/短信提醒制度):
//   - hospital 六 4 "后续复查时:根据患者病情和需求,给予相应的指导和帮助": a
//     `checkup` sent by the hospital's system gets hospital-checkup's call
//     by a nurse, due at the check-up and timely for exactly 2 days;
//   - auto "配件订货到货提醒": parts arrived → an SMS at once (timely 1 day)
//     and a call the next day (timely 2 more days), the call stopped when the
//     customer comes in (a maintenance arrives);
//   - auto "召回预约": a recall → an SMS at once and the booking call the
//     next day (timely a week);
//   - auto "主题促销活动提醒" (7 "及时运用短信平台发放活动政策内容(提前一周内)") and
//     "顾客维系活动预约": a promotion's SMS a week before its event_date
//     (09:00, timely 6 days); the loyalty event the same SMS and a booking
//     call 5 days before (timely 3 days);
//   - auto 3 "到期未来或因故不来的客户问清核实具体原因,并在ICREAM里做好记录": the
//     agent who reached a customer who did not come records the reason
//     (LogVisit.no_show, price), counted in GetProblemBreakdown.no_shows;
//   - auto 4 "服务总监每季度从ICREAM里调取流失客户数量(六个月以上未进站保养/维修的车辆数)的客户信息……
//     服务顾问根据关爱专员分配的流失客户信息进行回访跟踪并核实真实原因" and "附《流失客户统计分析表》":
//     a car last repaired 6 months before this quarter began is on the
//     quarter's list (auto-churn, due at the quarter's start, timely 30
//     days: late now unless today is in its first 30 days), the agent records
//     reason and remedy, and the churned-customer table of GenerateReport
//     lists them. Intake bounds completed_at only in the future, so the
//     front door can send a service 6+ months old.
func TestSeedRestHospitalAndDealer(t *testing.T) {
	s := setup(t, nil)

	// Hospital: a check-up an hour ago.
	clinic := newDesk(s, "clinic")
	clinic.loadPackAs("hospital", nil)
	checked := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	s.publish(attrIngress("clinic", "checkup-1", "checkup", "p-1", "", "{}", checked))
	s.expectLines("clinic", "checkup-1", []string{"hospital-checkup"},
		want("hospital-checkup", 0, phoneCh, "nurse", checked, checked.Add(48*time.Hour)))

	// Dealer: a customer-care agent (关爱专员, group crm) and a churn agent.
	dealer := newDesk(s, "dealer")
	policies := dealer.loadPackAs("auto", map[string]string{"crm-1": "crm", "churn-1": "churn_recovery"})

	// Parts that arrived 25 h ago: the SMS went at once, the call falls
	// due now (1 h ago). It is the only call of group crm due, so the care
	// agent is handed it; the customer did not come, too expensive.
	arrived := time.Now().Add(-25 * time.Hour).Truncate(time.Second).UTC()
	s.publish(attrIngress("dealer", "parts-2", "parts_arrived", "car-2", "", "{}", arrived))
	s.expectLines("dealer", "parts-2", []string{"auto-parts-arrived"},
		want("auto-parts-arrived", 0, smsCh, "crm", arrived, arrived.Add(24*time.Hour)),
		want("auto-parts-arrived", 1, phoneCh, "crm", arrived.Add(24*time.Hour), arrived.Add(72*time.Hour)))
	crm := dealer.agent("crm-1")
	call := s.claimAs(crm, "the care agent")
	require.Equal(t, "car-2", call.GetCustomer().GetExternalId())
	require.Equal(t, phoneCh, call.GetChannel())
	noShow := s.logAs(crm, &feedbackv1.LogVisitRequest{TenantId: "dealer", VisitId: call.GetVisitId(),
		NoShow: &feedbackv1.NoShow{Reason: typesv1.NoShowReason_NO_SHOW_REASON_PRICE, Note: "嫌配件贵"}})
	require.Equal(t, typesv1.NoShowReason_NO_SHOW_REASON_PRICE, noShow.GetNoShow().GetReason())
	s.answered(crm, call)
	// Hand computation: one no-show, reason price.
	waitFor(t, taskDeadline, "the no-show counted by analytics", func() (string, bool, error) {
		resp, err := s.analytics.GetProblemBreakdown(dealer.director, &analyticsv1.GetProblemBreakdownRequest{TenantId: "dealer"})
		if err != nil {
			return "", false, err
		}
		var got []string
		for _, n := range resp.GetNoShows() {
			got = append(got, fmt.Sprintf("%s=%d", n.GetReason(), n.GetCount()))
		}
		return "", slices.Equal(got, []string{"price=1"}), fmt.Errorf("no_shows %v", got)
	})

	// The other programs, all sent an hour ago; the events are 10 days ahead.
	completed := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	event := fmt.Sprintf(`"event_date":%q`, midnight(10).Format(time.DateOnly))
	s.publish(attrIngress("dealer", "parts-1", "parts_arrived", "car-1", "", "{}", completed))
	s.publish(attrIngress("dealer", "recall-1", "recall", "car-3", "", "{}", completed))
	s.publish(attrIngress("dealer", "promo-1", "campaign", "car-4", "", `{"campaign":"promotion",`+event+`}`, completed))
	s.publish(attrIngress("dealer", "loyalty-1", "campaign", "car-5", "", `{"campaign":"loyalty_event",`+event+`}`, completed))
	campaigns := []string{"auto-promotion", "auto-loyalty-event", "auto-service-festival"}
	parts := s.expectLines("dealer", "parts-1", []string{"auto-parts-arrived"},
		want("auto-parts-arrived", 0, smsCh, "crm", completed, completed.Add(24*time.Hour)),
		want("auto-parts-arrived", 1, phoneCh, "crm", completed.Add(24*time.Hour), completed.Add(72*time.Hour)))
	s.expectLines("dealer", "recall-1", []string{"auto-recall-booking"},
		want("auto-recall-booking", 0, smsCh, "crm", completed, completed.Add(24*time.Hour)),
		want("auto-recall-booking", 1, phoneCh, "crm", completed.Add(24*time.Hour), completed.Add(8*24*time.Hour)))
	// event_date − 7 days is midnight(3), made at 09:00, timely until
	// midnight(3) + 6 days; the call: midnight(5) + 3 days.
	s.expectLines("dealer", "promo-1", campaigns,
		want("auto-promotion", 0, smsCh, "crm", nine(3), midnight(9)))
	s.expectLines("dealer", "loyalty-1", campaigns,
		want("auto-loyalty-event", 0, smsCh, "crm", nine(3), midnight(9)),
		want("auto-loyalty-event", 1, phoneCh, "crm", nine(5), midnight(8)))

	// The customer of parts-1 comes in for a maintenance: the call of the
	// next day is stopped (the SMS went already).
	s.publish(attrIngress("dealer", "maint-1", "maintenance", "car-1", "", "{}", completed.Add(30*time.Minute)))
	waitFor(t, taskDeadline, "the parts call stopped by the maintenance", func() (string, bool, error) {
		for _, v := range s.policyVisits("dealer", parts, "auto-parts-arrived") {
			if v.GetStep() == 1 {
				return v.GetReason(), v.GetStatus() == "cancelled", fmt.Errorf("status %s (%s)", v.GetStatus(), v.GetReason())
			}
		}
		return "", false, nil
	})
	for _, v := range s.policyVisits("dealer", parts, "auto-parts-arrived") {
		if v.GetStep() == 0 {
			require.NotEqual(t, "cancelled", v.GetStatus(), "the SMS was due at once and is not stopped")
		}
	}

	// The churned car: repaired last 6 calendar months before this
	// quarter's start, so the quarter's list holds it.
	qStart := quarterStart(time.Now())
	if time.Now().Before(qStart.Add(10 * time.Hour)) {
		// Its call is made at 09:00 of the quarter's first day: in the
		// first hours of a quarter, take the quarter before, whose call is due.
		qStart = qStart.AddDate(0, -3, 0)
	}
	lastRepair := qStart.AddDate(0, -6, 0)
	_, err := s.feedback.CreateQuestionnaire(dealer.admin, churnQuestionnaire())
	require.NoError(t, err)
	_, err = s.feedback.SetPolicyQuestionnaire(dealer.admin, &feedbackv1.SetPolicyQuestionnaireRequest{TenantId: "dealer", PolicyId: policies["auto-churn"], QuestionnaireId: "churn"})
	require.NoError(t, err)
	s.publish(fmt.Sprintf(`{"tenant_id":"dealer","source_system":"erp-demo","source_event_id":"repair-old","service_type":"repair","completed_at":%q,"staff_id":"advisor-7","customer":{"external_id":"car-6","name":"赵磊","phone":"+8613700137006"},"vehicle":{"vin":"LSVAB2180E2100006","plate":"沪A12345","model":"Octavia"}}`,
		lastRepair.Format(time.RFC3339)))
	// Hand computation: due at the quarter's start (a date: made at
	// 09:00), timely until 30 days after it.
	s.expectLines("dealer", "repair-old", []string{"auto-churn"},
		want("auto-churn", 0, phoneCh, "churn_recovery", qStart.Add(9*time.Hour), qStart.Add(30*24*time.Hour)))
	churner := dealer.agent("churn-1")
	churnCall := s.claimAs(churner, "the churn agent")
	require.Equal(t, "car-6", churnCall.GetCustomer().GetExternalId())
	s.logAs(churner, &feedbackv1.LogVisitRequest{TenantId: "dealer", VisitId: churnCall.GetVisitId(), Answers: []*typesv1.Answer{
		{QuestionId: "reason", Aspect: "churn_reason", Choice: "price"},
		{QuestionId: "remedy", Aspect: "churn_remedy", Choice: "maintenance_coupon"},
	}})
	s.answered(churner, churnCall)
	// The table: one row, the car's masked plate, the advisor, last visit,
	// reason and remedy.
	waitFor(t, taskDeadline, "the churned-customer row", func() (string, bool, error) {
		resp, err := s.analytics.GenerateReport(dealer.director, &analyticsv1.GenerateReportRequest{TenantId: "dealer",
			From: timestamppb.New(qStart), To: timestamppb.New(midnight(1)), Format: analyticsv1.ReportFormat_REPORT_FORMAT_CSV})
		if err != nil {
			return "", false, err
		}
		var rows []string
		for _, line := range strings.Split(string(resp.GetContent()), "\n") {
			if strings.HasPrefix(line, "churned_customer,") {
				rows = append(rows, line)
			}
		}
		ok := len(rows) == 1 && strings.Contains(rows[0], "price") && strings.Contains(rows[0], "maintenance_coupon") &&
			strings.Contains(rows[0], "advisor-7") && strings.Contains(rows[0], "Octavia") && strings.Contains(rows[0], "沪A***45") &&
			strings.Contains(rows[0], lastRepair.Format(time.DateOnly)) && !strings.Contains(rows[0], "赵磊")
		return "", ok, fmt.Errorf("churned_customer rows %q", rows)
	})
}

// churnQuestionnaire is the dealer's churn questionnaire of docs/figures.md.
func churnQuestionnaire() *feedbackv1.CreateQuestionnaireRequest {
	req := &feedbackv1.CreateQuestionnaireRequest{}
	if err := protojson.Unmarshal([]byte(`{"questionnaire":{"tenant_id":"dealer","id":"churn","name":"流失客户分析 churned customer","questions":[
  {"id":"reason","aspect":"churn_reason","text":"流失原因 why did you not come back?","kind":"QUESTION_KIND_CHOICE","required":true,
   "choices":["moved_away","sold_car","price","service_quality","distance","competitor","low_usage","other"]},
  {"id":"remedy","aspect":"churn_remedy","text":"挽回措施 what do we offer?","kind":"QUESTION_KIND_CHOICE","required":true,
   "choices":["maintenance_coupon","advisor_call","pickup_service","complaint_handled","none"]},
  {"id":"note","aspect":"churn_note","text":"备注 notes","kind":"QUESTION_KIND_TEXT"}]}}`), req); err != nil {
		panic(err)
	}
	return req
}

// TestSeedRestCementRound (issue 16 item 1; seed 000 客户回访管理措施, cement
// logistics):
//   - 1 "客服代表根据前一天旳《客户回执》,对收货人进行回访,确认前一天旳送货品种和数量": the
//     plant links the seed's questionnaire seed-000-cement-delivery to its
//     cement-delivery-confirmation (SetPolicyQuestionnaire as its
//     administrator); a delivery 25 h ago is called 1 day after it, timely
//     for 1 more day, by the logistics desk;
//   - 5 "回访时发现数量或品种有出入时,即时向总经理汇报": the agent's record
//     answers "no" on the quantity, and in the same call a delivery_mismatch
//     complaint is in the general manager's queue (the department owner of
//     general_manager, ListComplaints), urgent, due in 24 h;
//   - 5 "每次回访结束,要及时写出书面回访汇报,报送总经理": GenerateRoundReport, read
//     by that department owner for the round's day and the policy's id (from
//     ListPolicies), lists the delivery as a mismatch with its complaint.
func TestSeedRestCementRound(t *testing.T) {
	s := setup(t, nil)
	d := newDesk(s, "plant")
	policies := d.loadPackAs("cement", map[string]string{"kf-1": "logistics"})
	_, err := s.feedback.SetPolicyQuestionnaire(d.admin, &feedbackv1.SetPolicyQuestionnaireRequest{TenantId: "plant",
		PolicyId: policies["cement-delivery-confirmation"], QuestionnaireId: "seed-000-cement-delivery"})
	require.NoError(t, err)

	delivered := time.Now().Add(-25 * time.Hour).Truncate(time.Second).UTC()
	s.publish(attrIngress("plant", "delivery-1", "delivery", "k-1", "", "{}", delivered))
	due := delivered.Add(24 * time.Hour)
	serviceID := s.expectLines("plant", "delivery-1", []string{"cement-delivery-confirmation"},
		want("cement-delivery-confirmation", 0, phoneCh, "logistics", due, due.Add(24*time.Hour)))
	confirmation := s.policyVisits("plant", serviceID, "cement-delivery-confirmation")[0]

	// The delivery's two calls of the day (the confirmation, and the first
	// of cement-logistics-monthly, timely 2 days longer) are tasks before
	// the agent claims: dispatch hands out the earlier deadline first.
	waitFor(t, taskDeadline, "the two logistics tasks", func() (int, bool, error) {
		resp, err := s.dispatch.ListTasks(d.director, &dispatchv1.ListTasksRequest{TenantId: "plant", PageSize: 100})
		return len(resp.GetTasks()), err == nil && len(resp.GetTasks()) == 2, err
	})
	kf := d.agent("kf-1")
	task := s.claimAs(kf, "the customer service representative")
	require.Equal(t, confirmation.GetId(), task.GetVisitId(), "the confirmation is due first")
	rec := s.logAs(kf, &feedbackv1.LogVisitRequest{TenantId: "plant", VisitId: task.GetVisitId(), Answers: []*typesv1.Answer{
		{QuestionId: "product_matches", Aspect: "product_matches", Yes: ptr(true)},
		{QuestionId: "quantity_matches", Aspect: "quantity_matches", Yes: ptr(false), Comment: "少了两吨"},
	}})
	s.answered(kf, task)
	require.Len(t, rec.GetComplaintIds(), 1, "the quantity's mismatch is a complaint")
	complaintID := rec.GetComplaintIds()[0]

	// At once: in the LogVisit's transaction, no waiting.
	gm := d.owner("general_manager")
	resp, err := s.feedback.ListComplaints(gm, &feedbackv1.ListComplaintsRequest{TenantId: "plant", Department: "general_manager", PageSize: 100})
	require.NoError(t, err)
	require.Len(t, resp.GetComplaints(), 1)
	c := resp.GetComplaints()[0]
	require.Equal(t, complaintID, c.GetId())
	require.Equal(t, "delivery_mismatch", c.GetCategory())
	require.Equal(t, "general_manager", c.GetDepartment())
	require.Equal(t, "urgent", c.GetSeverity())
	require.Equal(t, task.GetVisitId(), c.GetVisitId())
	require.Equal(t, c.GetCreatedAt().AsTime().Add(24*time.Hour), c.GetDeadline().AsTime(), "due in 24 h")
	require.Contains(t, c.GetDescription(), "quantity")

	// The round: the confirmations due on the day of due (UTC: the tenant
	// sets no zone), the policy's id as ListPolicies gives it.
	listed, err := s.scheduler.ListPolicies(d.director, &schedulerv1.ListPoliciesRequest{TenantId: "plant"})
	require.NoError(t, err)
	i := slices.IndexFunc(listed.GetPolicies(), func(p *schedulerv1.Policy) bool { return p.GetName() == "cement-delivery-confirmation" })
	require.GreaterOrEqual(t, i, 0)
	policyID := listed.GetPolicies()[i].GetId()
	y, m, day := due.Date()
	dayStart := time.Date(y, m, day, 0, 0, 0, 0, time.UTC)
	waitFor(t, taskDeadline, "the round report listing the mismatch", func() (string, bool, error) {
		r, err := s.analytics.GenerateRoundReport(gm, &analyticsv1.GenerateRoundReportRequest{TenantId: "plant", PolicyId: policyID,
			DayStart: timestamppb.New(dayStart), Format: analyticsv1.ReportFormat_REPORT_FORMAT_CSV})
		if err != nil {
			return "", false, err
		}
		var rows []string
		for _, line := range strings.Split(string(r.GetContent()), "\n") {
			if strings.HasPrefix(line, "delivery,") {
				rows = append(rows, line)
			}
		}
		// Hand computation: one delivery to confirm, reached, a mismatch
		// (product yes, quantity no), its complaint open, called by kf-1.
		ok := len(rows) == 1 && strings.Contains(rows[0], ",mismatch,") && strings.Contains(rows[0], complaintID) &&
			strings.Contains(rows[0], serviceID) && strings.Contains(rows[0], "kf-1") && strings.Contains(rows[0], "open")
		return "", ok, fmt.Errorf("delivery rows %q", rows)
	})
}

// TestSeedRestImprovementPlan (issue 16 item 1; seed 003 line 32
// "5. 改进落实率:针对回访发现的问题,需在30天内制定并执行改进计划,落实率达到90%以上。"): a
// property office's dispatcher logs two follow-ups that each found a
// service problem, which feedback escalates to after-sales; that
// department's owner sets an improvement plan on one of them
// (SetImprovementPlan, a measure due in a week) and carries it out
// (CompleteImprovementMeasure); the director's GetProblemBreakdown
// improvement is the hand computation 1 of 2 (50 %, below the 90 % target).
func TestSeedRestImprovementPlan(t *testing.T) {
	s := setup(t, nil)
	d := newDesk(s, "office")
	d.loadPack("standard003", "seed-003-property", "dispatcher", "d-1")
	t0 := time.Now().UTC().Truncate(time.Second)
	d.serve("s1-repair", "repair", t0.Add(-3*time.Hour))
	d.serve("s2-maintenance", "maintenance", t0.Add(-2*time.Hour))
	d.plannedOf("s1-repair")
	d.plannedOf("s2-maintenance")
	logged := d.work(map[string]record{
		"s1-repair": {occurred: t0, ratings: map[string]typesv1.Rating{"overall": ratedB},
			problem: &typesv1.Problem{Category: "service_quality", Description: "维修人员迟到一小时"}},
		"s2-maintenance": {occurred: t0, ratings: map[string]typesv1.Rating{"overall": ratedB},
			problem: &typesv1.Problem{Category: "service_quality", Description: "保养后水管仍漏水"}},
	}, "d-1")
	require.Len(t, logged["s1-repair"].GetComplaintIds(), 1)
	require.Len(t, logged["s2-maintenance"].GetComplaintIds(), 1)
	improved := logged["s1-repair"].GetComplaintIds()[0]

	owner := d.owner("after_sales")
	queue, err := s.feedback.ListComplaints(owner, &feedbackv1.ListComplaintsRequest{TenantId: "office", Department: "after_sales", PageSize: 100})
	require.NoError(t, err)
	require.Len(t, queue.GetComplaints(), 2, "both problems escalated to after-sales")
	plan, err := s.feedback.SetImprovementPlan(owner, &feedbackv1.SetImprovementPlanRequest{TenantId: "office", ComplaintId: improved,
		Measures: []*feedbackv1.ImprovementMeasure{{Text: "调整维修排班,预约时段内到场", Owner: "维修主管", DueAt: timestamppb.New(t0.Add(7 * 24 * time.Hour))}}})
	require.NoError(t, err)
	require.Len(t, plan.GetPlan().GetMeasures(), 1)
	done, err := s.feedback.CompleteImprovementMeasure(owner, &feedbackv1.CompleteImprovementMeasureRequest{TenantId: "office", ComplaintId: improved,
		MeasureId: plan.GetPlan().GetMeasures()[0].GetId(), Note: "已执行"})
	require.NoError(t, err)
	require.NotNil(t, done.GetPlan().GetMeasures()[0].GetCompletedAt())

	// Hand computation: 2 complaints escalated today; 1 with its plan set
	// and every measure carried out within 30 days → 1/2 (50 % < 90 %).
	waitFor(t, taskDeadline, "improvement 1/2", func() (string, bool, error) {
		resp, err := s.analytics.GetProblemBreakdown(d.director, &analyticsv1.GetProblemBreakdownRequest{TenantId: "office"})
		if err != nil {
			return "", false, err
		}
		return "", ratio(resp.GetImprovement()) == "1/2", fmt.Errorf("improvement %s", ratio(resp.GetImprovement()))
	})
	resp, err := s.analytics.GetProblemBreakdown(d.director, &analyticsv1.GetProblemBreakdownRequest{TenantId: "office"})
	require.NoError(t, err)
	require.InDelta(t, 0.5, resp.GetImprovement().GetValue(), 1e-9)
	require.InDelta(t, 0.9, resp.GetImprovement().GetTarget(), 1e-9, "落实率达到90%以上")
	require.False(t, resp.GetImprovement().GetMeetsTarget())
}
