package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"
	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/issuer"
)

// The seed tests below enter only through the front door: services on the
// NATS ingress, and gRPC calls each made with a token of the role that
// makes the call in the seed's company (the tenant's administrator loads
// the pack, agents claim and log, department owners read their queues, the
// director reads the figures). They compare with hand computations written
// out in the tests.

// desk holds a tenant's people, each with a token of their own role.
type desk struct {
	s      *system
	tenant string
	// admin configures the tenant; director reads its figures and plans.
	admin, director context.Context
	// customers counts the customers served, for their phone numbers.
	customers int
}

func newDesk(s *system, tenantID string) *desk {
	return &desk{s: s, tenant: tenantID,
		admin:    s.withToken(issuer.Token{Subject: "admin-" + tenantID, Claims: auth.Claims{Tenant: tenantID, Roles: []string{string(auth.TenantAdmin)}}}),
		director: s.withToken(issuer.Token{Subject: "director-" + tenantID, Claims: auth.Claims{Tenant: tenantID, Roles: []string{string(auth.Director)}, AgentID: "director"}}),
	}
}

// withToken is ctx carrying tok.
func (s *system) withToken(tok issuer.Token) context.Context {
	s.t.Helper()
	ctx, err := s.issuer.Context(s.t.Context(), tok)
	require.NoError(s.t, err)
	return ctx
}

// agent is the token of agent id of the desk's tenant, with the agent role only.
func (d *desk) agent(id string) context.Context {
	return d.s.withToken(issuer.Token{Subject: "agent-" + d.tenant + "-" + id, Claims: auth.Claims{Tenant: d.tenant, Roles: []string{string(auth.Agent)}, AgentID: id}})
}

// owner is the token of the owner of one department (department_owner only).
func (d *desk) owner(department string) context.Context {
	return d.s.withToken(issuer.Token{Subject: "owner-" + d.tenant + "-" + department, Claims: auth.Claims{Tenant: d.tenant,
		Roles: []string{string(auth.DepartmentOwner)}, AgentID: "owner-" + department, Departments: []string{department}}})
}

// loadPack loads a pack for the tenant, links each of its policies to a
// seed questionnaire, adds agents of a group, and returns the pack's policy
// ids by name.
func (d *desk) loadPack(pack, questionnaire, group string, agents ...string) map[string]string {
	t := d.s.t
	t.Helper()
	groups := map[string]string{}
	for _, a := range agents {
		groups[a] = group
	}
	ids := d.loadPackAs(pack, groups)
	for name, id := range ids {
		_, err := d.s.feedback.SetPolicyQuestionnaire(d.admin, &feedbackv1.SetPolicyQuestionnaireRequest{TenantId: d.tenant, PolicyId: id, QuestionnaireId: questionnaire})
		require.NoError(t, err, "SetPolicyQuestionnaire %s", name)
	}
	return ids
}

// serve puts a completed service of the tenant on the NATS ingress, as the
// upstream system sends it; each customer has a phone of its own.
func (d *desk) serve(event, serviceType string, completed time.Time) {
	d.s.t.Helper()
	d.customers++
	d.s.publish(fmt.Sprintf(`{"tenant_id":%q,"source_system":"erp-demo","source_event_id":%q,"service_type":%q,"completed_at":%q,"customer":{"external_id":%q,"name":"顾客","phone":"+86137%08d"}}`,
		d.tenant, event, serviceType, completed.UTC().Format(time.RFC3339), "c-"+event, d.customers))
}

// plannedOf waits for the one planned visit of the customer of event (each
// event is its own customer's only service) and returns it, as the
// director finds it: the customer by their upstream id, then their visits.
func (d *desk) plannedOf(event string) *schedulerv1.PlannedVisit {
	t := d.s.t
	t.Helper()
	return waitFor(t, taskDeadline, "the planned visit of "+event, func() (*schedulerv1.PlannedVisit, bool, error) {
		c, err := d.s.intake.GetCustomer(d.director, &intakev1.GetCustomerRequest{TenantId: d.tenant, ExternalId: "c-" + event})
		if err != nil {
			return nil, false, err
		}
		resp, err := d.s.scheduler.ListPlannedVisits(d.director, &schedulerv1.ListPlannedVisitsRequest{TenantId: d.tenant, CustomerId: c.GetCustomer().GetId(), PageSize: 100})
		if err != nil || len(resp.GetVisits()) == 0 {
			return nil, false, err
		}
		require.Len(t, resp.GetVisits(), 1, "%s: one follow-up per service", event)
		return resp.GetVisits()[0], true, nil
	})
}

// record is what an agent logs for the customer of an event.
type record struct {
	occurred time.Time
	ratings  map[string]typesv1.Rating // aspect → rating; an aspect left out is unrated
	problem  *typesv1.Problem
}

// work has the agents claim tasks in turn (ClaimNextTask with their own
// tokens) until each event of records was claimed once, and log the record
// of its customer at once (LogVisit as the claiming agent). A task of a
// customer not in records fails the test. It returns the records by event.
func (d *desk) work(records map[string]record, agents ...string) map[string]*feedbackv1.VisitRecord {
	t := d.s.t
	t.Helper()
	out := map[string]*feedbackv1.VisitRecord{}
	turn := 0
	for len(out) < len(records) {
		agentID := agents[turn%len(agents)]
		turn++
		ctx := d.agent(agentID)
		task := waitFor(t, taskDeadline, "a task for "+agentID, func() (*dispatchv1.Task, bool, error) {
			resp, err := d.s.dispatch.ClaimNextTask(ctx, &dispatchv1.ClaimNextTaskRequest{TenantId: d.tenant})
			if status.Code(err) == codes.ResourceExhausted {
				return nil, false, err
			}
			require.NoError(t, err, "ClaimNextTask as %s", agentID)
			return resp.GetTask(), resp.GetTask() != nil, nil
		})
		event := task.GetCustomer().GetExternalId()[len("c-"):]
		r, ok := records[event]
		require.True(t, ok, "%s claimed the task of %s, which no record is for (dispatch orders by deadline)", agentID, event)
		require.NotContains(t, out, event, "the task of %s was handed out twice", event)
		var answers []*typesv1.Answer
		for aspect, rating := range r.ratings {
			answers = append(answers, &typesv1.Answer{Aspect: aspect, Rating: rating})
		}
		slices.SortFunc(answers, func(a, b *typesv1.Answer) int { return strings.Compare(a.GetAspect(), b.GetAspect()) })
		req := &feedbackv1.LogVisitRequest{TenantId: d.tenant, VisitId: task.GetVisitId(), Answers: answers, OccurredAt: timestamppb.New(r.occurred)}
		if r.problem != nil {
			req.Problems = []*typesv1.Problem{r.problem}
		}
		out[event] = waitFor(t, taskDeadline, "LogVisit of "+event, func() (*feedbackv1.VisitRecord, bool, error) {
			resp, err := d.s.feedback.LogVisit(ctx, req)
			if status.Code(err) == codes.NotFound {
				return nil, false, err // feedback has not heard the VisitDue yet
			}
			require.NoError(t, err, "LogVisit of %s as %s", event, agentID)
			return resp.GetRecord(), true, nil
		})
		require.Equal(t, agentID, out[event].GetAgentId())
	}
	return out
}

// ratio is a figure as numerator / denominator, for comparing with a hand computation.
func ratio(r *analyticsv1.Ratio) string {
	return fmt.Sprintf("%d/%d", r.GetNumerator(), r.GetDenominator())
}

// figures reads the tenant's figures as its director (all time: the
// tenant's every visit) in the shape the hand computations are written in.
func (d *desk) figures(aspects ...string) map[string]string {
	t := d.s.t
	got := map[string]string{}
	tl, err := d.s.analytics.GetTimeliness(d.director, &analyticsv1.GetTimelinessRequest{TenantId: d.tenant})
	if err != nil {
		got["error"] = err.Error()
		return got
	}
	got["timeliness"] = ratio(tl.GetPolicyDeadline())
	got["late"] = ratio(tl.GetLate())
	got["within_48h"] = ratio(tl.GetWithin_48H())
	cov, err := d.s.analytics.GetCoverage(d.director, &analyticsv1.GetCoverageRequest{TenantId: d.tenant})
	if err != nil {
		got["error"] = err.Error()
		return got
	}
	got["coverage"] = ratio(cov.GetCoverage())
	got["response_rate"] = ratio(cov.GetResponseRate())
	got["visit_completion"] = ratio(cov.GetVisitCompletion())
	for _, aspect := range aspects {
		sat, err := d.s.analytics.GetSatisfaction(d.director, &analyticsv1.GetSatisfactionRequest{TenantId: d.tenant, Aspect: aspect})
		if err != nil {
			got["error"] = err.Error()
			return got
		}
		got[aspect] = fmt.Sprintf("A%d B%d C%d: rate %d/%d, rated %d/%d", sat.GetSatisfied(), sat.GetFairlySatisfied(), sat.GetUnsatisfied(),
			sat.GetSatisfied()+sat.GetFairlySatisfied(), sat.GetReturned(), sat.GetRatedRate().GetNumerator(), sat.GetRated())
		require.Equal(t, aspect, sat.GetAspect())
		i := slices.IndexFunc(sat.GetAspects(), func(a *analyticsv1.AspectSatisfaction) bool { return a.GetAspect() == aspect })
		if i >= 0 {
			a := sat.GetAspects()[i]
			got[aspect+" (aspects)"] = fmt.Sprintf("rate %s target %.2f, rated %s", ratio(a.GetRate()), a.GetRate().GetTarget(), ratio(a.GetRatedRate()))
		}
	}
	return got
}

// expectFigures waits (generously: analytics counts from the event
// stream) until the tenant's figures equal the hand computation, and
// fails showing both when they do not.
func (d *desk) expectFigures(want map[string]string, aspects ...string) {
	t := d.s.t
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, want, d.figures(aspects...))
	}, 2*time.Minute, 250*time.Millisecond, "the figures of %s against the hand computation", d.tenant)
}

const (
	ratedA = typesv1.Rating_RATING_SATISFIED
	ratedB = typesv1.Rating_RATING_FAIRLY_SATISFIED
	ratedC = typesv1.Rating_RATING_UNSATISFIED
)

// TestSeed001AppliancesThroughTheFrontDoor (issue 16 item 6; seed 001,
// 家電公司服務回訪管理細則): a home-appliance company loads the `appliance`
// pack; its ERP sends purchases, installations and repairs on the NATS
// ingress at known times; its agents claim and log the calls that fell due;
// the problems go to the departments the seed names; the director's
// timeliness and satisfaction figures equal the hand computation.
//
// The seed (四、1, 4 and 5; the stored copy carries pinyin residue such as 產(chǎn)):
//   - "對于新購買產(chǎn)品的客戶,在購買后的1-3天內(nèi)安排首次回訪……對于接受安裝、維修服務的客戶,在服務完成后的2-5天內(nèi)進行回訪":
//     a purchase is called from +1 day, timely until +3 days; an
//     installation or a repair from +2 days, timely until +5 days;
//   - "問卷內(nèi)容應涵蓋產(chǎn)品質(zhì)量、服務態(tài)度、服務效率等關鍵指標": the seed's questionnaire
//     seed-001-appliance (product quality, service attitude, efficiency, overall);
//   - "屬于產(chǎn)品質(zhì)量問題的,反饋給研發(fā)部門與生產(chǎn)部門;屬于服務質(zhì)量問題的,反饋給售后服務部門。明確問題處理的責任部門與時間節(jié)點":
//     a product-quality problem goes to R&D and production (rnd_production), a
//     service-quality one to after-sales (after_sales), each with an owner and
//     a deadline (feedback's default COMPLAINT_RULES: 30 and 7 days);
//   - 六、2 考核機制 (回訪及時率、客戶滿意度, garbled in the stored copy):
//     follow-up timeliness and satisfaction, GetTimeliness and GetSatisfaction.
func TestSeed001AppliancesThroughTheFrontDoor(t *testing.T) {
	s := setup(t, nil)
	d := newDesk(s, "shop")
	policies := d.loadPack("appliance", "seed-001-appliance", "followup", "a-1", "a-2")
	purchase, installRepair := policies["appliance-purchase-followup"], policies["appliance-install-repair-followup"]
	require.NotEmpty(t, purchase)
	require.NotEmpty(t, installRepair)

	// The services, at known times before now (t0).
	t0 := time.Now().UTC().Truncate(time.Second)
	day := 24 * time.Hour
	completed := map[string]time.Time{
		"buy-1":     t0.Add(-36 * time.Hour),       // its call fell due 12 h ago
		"buy-2":     t0.Add(-time.Minute),          // bought just now: its call is tomorrow
		"install-1": t0.Add(-3 * day),              // fell due a day ago
		"repair-1":  t0.Add(-2*day - 12*time.Hour), // fell due 12 h ago
		"repair-2":  t0.Add(-6 * day),              // sent late: its deadline passed a day ago
	}
	kinds := map[string]string{"buy-1": "purchase", "buy-2": "purchase", "install-1": "installation", "repair-1": "repair", "repair-2": "repair"}
	for _, event := range slices.Sorted(maps.Keys(completed)) {
		d.serve(event, kinds[event], completed[event])
	}

	// Hand computation of each planned call: purchase +1 d, timely to +3 d;
	// installation or repair +2 d, timely to +5 d. By phone, for the
	// follow-up department (group followup).
	plan := func(event string) (policyID string, due, deadline time.Time) {
		c := completed[event]
		if kinds[event] == "purchase" {
			return purchase, c.Add(1 * day), c.Add(3 * day)
		}
		return installRepair, c.Add(2 * day), c.Add(5 * day)
	}
	for _, event := range slices.Sorted(maps.Keys(completed)) {
		v := d.plannedOf(event)
		policyID, due, deadline := plan(event)
		require.Equal(t, policyID, v.GetPolicyId(), event)
		require.Equal(t, phoneCh, v.GetChannel(), event)
		require.Equal(t, "followup", v.GetGroup(), event)
		require.Equal(t, due, v.GetDueAt().AsTime(), "%s: due", event)
		require.Equal(t, deadline, v.GetDeadline().AsTime(), "%s: deadline", event)
	}
	// Spelled out, for the reader: the seed's windows in clock times.
	require.Equal(t, t0.Add(-12*time.Hour), d.plannedOf("buy-1").GetDueAt().AsTime())
	require.Equal(t, t0.Add(36*time.Hour), d.plannedOf("buy-1").GetDeadline().AsTime())
	require.Equal(t, t0.Add(-day), d.plannedOf("repair-2").GetDeadline().AsTime())

	// The agents claim the four calls that fell due (buy-2's is tomorrow)
	// and log them. repair-2 fell due after its deadline: the scheduler
	// fires it late, and it is made late.
	product := &typesv1.Problem{Category: "product_quality", Description: "空调维修后三天压缩机又不制冷"}
	service := &typesv1.Problem{Category: "service_quality", Description: "安装师傅迟到两个小时，态度生硬"}
	records := map[string]record{
		"buy-1":     {occurred: t0, ratings: map[string]typesv1.Rating{"overall": ratedA, "product_quality": ratedA, "efficiency": ratedA}},
		"install-1": {occurred: t0, ratings: map[string]typesv1.Rating{"overall": ratedB, "service_attitude": ratedC}, problem: service},
		"repair-1":  {occurred: t0.Add(-time.Hour), ratings: map[string]typesv1.Rating{"overall": ratedC, "product_quality": ratedC, "service_attitude": ratedA}, problem: product},
		"repair-2":  {occurred: t0, ratings: map[string]typesv1.Rating{"overall": ratedA}},
	}
	logged := d.work(records, "a-1", "a-2")
	require.Len(t, logged["install-1"].GetComplaintIds(), 1)
	require.Len(t, logged["repair-1"].GetComplaintIds(), 1)
	require.Empty(t, logged["buy-1"].GetComplaintIds())
	require.Empty(t, logged["repair-2"].GetComplaintIds())

	// The problems, each in its department's queue as that department's
	// owner sees it: product quality to R&D and production (30 days),
	// service quality to after-sales (7 days), owned by the agent who
	// heard it, the deadline counted from when the customer said it.
	queues := []struct {
		department, category, event string
		window                      time.Duration
	}{
		{"rnd_production", "product_quality", "repair-1", 30 * day},
		{"after_sales", "service_quality", "install-1", 7 * day},
	}
	for _, q := range queues {
		resp, err := s.feedback.ListComplaints(d.owner(q.department), &feedbackv1.ListComplaintsRequest{TenantId: d.tenant})
		require.NoError(t, err, "ListComplaints as the owner of %s", q.department)
		require.Len(t, resp.GetComplaints(), 1, "%s's queue", q.department)
		c := resp.GetComplaints()[0]
		require.Equal(t, logged[q.event].GetComplaintIds()[0], c.GetId(), q.department)
		require.Equal(t, q.category, c.GetCategory())
		require.Equal(t, q.department, c.GetDepartment())
		require.Equal(t, "open", c.GetStatus())
		require.Equal(t, logged[q.event].GetAgentId(), c.GetOwnerAgentId(), "an owner: the agent who took it")
		require.Equal(t, records[q.event].occurred.Add(q.window), c.GetDeadline().AsTime(), "%s: a deadline", q.department)
	}
	// Each department sees its own problems only.
	_, err := s.feedback.ListComplaints(d.owner("after_sales"), &feedbackv1.ListComplaintsRequest{TenantId: d.tenant, Department: "rnd_production"})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	_, err = s.feedback.GetComplaint(d.owner("rnd_production"), &feedbackv1.GetComplaintRequest{TenantId: d.tenant, Id: logged["install-1"].GetComplaintIds()[0]})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)

	// Hand computation of the figures (docs/figures.md), all time:
	//   - timeliness: visits made by the policy's deadline and not fired
	//     late / visits due with a deadline. Due: the five (buy-2's call is
	//     planned for tomorrow and not cancelled: due, not made). Made by
	//     the deadline: buy-1 (t0 ≤ t0+36h), install-1 (t0 ≤ t0+2d),
	//     repair-1 (t0−1h ≤ t0+2.5d) = 3; repair-2 made at t0, a day after
	//     its deadline, and fired late. → 3/5; late 1/5;
	//   - within 48 h of the service (seed 003's figure, here for
	//     completeness): the four fired visits know their service's time;
	//     buy-1 36 h yes, install-1 72 h, repair-1 59 h, repair-2 6 d no → 1/4;
	//   - coverage: 4 of the 5 services have their call made → 4/5, and
	//     per visit 4/5; every record rated something → response 4/5;
	//   - satisfaction (A + B) / questionnaires returned (4):
	//     overall A buy-1, repair-2; B install-1; C repair-1 → 3/4 (75 %,
	//     below seed 003's 85 %), rated 3/4;
	//     product_quality A buy-1, C repair-1 → 1/4, rated 1/2;
	//     service_attitude C install-1, A repair-1 → 1/4, rated 1/2;
	//     efficiency A buy-1 → 1/4, rated 1/1.
	d.expectFigures(map[string]string{
		"timeliness": "3/5", "late": "1/5", "within_48h": "1/4",
		"coverage": "4/5", "visit_completion": "4/5", "response_rate": "4/5",
		"overall":                    "A2 B1 C1: rate 3/4, rated 3/4",
		"overall (aspects)":          "rate 3/4 target 0.85, rated 3/4",
		"product_quality":            "A1 B0 C1: rate 1/4, rated 1/2",
		"product_quality (aspects)":  "rate 1/4 target 0.80, rated 1/2",
		"service_attitude":           "A1 B0 C1: rate 1/4, rated 1/2",
		"service_attitude (aspects)": "rate 1/4 target 0.80, rated 1/2",
		"efficiency":                 "A1 B0 C0: rate 1/4, rated 1/1",
		"efficiency (aspects)":       "rate 1/4 target 0.80, rated 1/1",
	}, "overall", "product_quality", "service_attitude", "efficiency")
}

// TestSeed003StandardThroughTheFrontDoor (issue 16 item 6; seed 003,
// 服务回访质量标准 and 某管理处服务回访工作规程): a property management office
// loads the `standard003` pack and links the seed's questionnaire
// (seed-003-property: the aspects of 3.1.1 定向, rated 3.1.2 定性 a/b/c);
// its system sends services on the NATS ingress; its dispatcher logs four of
// the five follow-ups, rating the overall impression and some items and
// leaving others blank; the director's figures equal the hand computation of
// the seed's formulas:
//   - line 28 "1. 回访覆盖率:确保对所有服务对象进行定期回访,不低于90%的客户应参与回访。": coverage;
//   - line 30 "3. 回访及时性:对于新服务或问题解决后的回访,应在服务结束后的48小时内完成。": within 48 h;
//   - line 31 "4. 客户满意度:总体满意度应保持在85%以上,针对具体问题的满意度不应低于80%。": the targets;
//   - lines 66–71 "a.发出票数 b.回收票数" and "单项服务满意率=∑该项服务满意或一般满意票/回收票数_100%",
//     "综合评议满意率=∑综合评议的满意或一般满意/回收票数_100%": an item's rate over the
//     questionnaires returned, a blank counting against it; beside it the
//     second figure (rated, rated_rate) over the questionnaires that rated the item.
func TestSeed003StandardThroughTheFrontDoor(t *testing.T) {
	s := setup(t, nil)
	d := newDesk(s, "office")
	policies := d.loadPack("standard003", "seed-003-property", "dispatcher", "d-1")
	standard := policies["standard-48h"]
	require.NotEmpty(t, standard)

	t0 := time.Now().UTC().Truncate(time.Second)
	completed := map[string]time.Time{
		"s1-repair":       t0.Add(-10 * time.Hour),
		"s2-maintenance":  t0.Add(-20 * time.Hour),
		"s3-installation": t0.Add(-47 * time.Hour),
		"s4-delivery":     t0.Add(-60 * time.Hour), // sent late: its 48 h ended 12 h ago
		"s5-complaint":    t0.Add(-5 * time.Hour),  // never reached
	}
	kinds := map[string]string{"s1-repair": "repair", "s2-maintenance": "maintenance", "s3-installation": "installation",
		"s4-delivery": "delivery", "s5-complaint": "complaint_closed"}
	for _, event := range slices.Sorted(maps.Keys(completed)) {
		d.serve(event, kinds[event], completed[event])
	}
	// Hand computation of each follow-up: due at once, within 48 hours of
	// the service (exactly 48 h), by phone, for the dispatcher (2.1 管理处调度人员).
	visits := map[string]*schedulerv1.PlannedVisit{}
	for _, event := range slices.Sorted(maps.Keys(completed)) {
		v := d.plannedOf(event)
		visits[event] = v
		require.Equal(t, standard, v.GetPolicyId(), event)
		require.Equal(t, phoneCh, v.GetChannel(), event)
		require.Equal(t, "dispatcher", v.GetGroup(), event)
		require.Equal(t, completed[event], v.GetDueAt().AsTime(), "%s: due", event)
		require.Equal(t, completed[event].Add(48*time.Hour), v.GetDeadline().AsTime(), "%s: deadline", event)
	}
	// All five are tasks before anyone claims, so that dispatch hands them
	// out by deadline (s4, s3, s2, s1, then s5, which nobody claims).
	waitFor(t, taskDeadline, "the five tasks", func() (int, bool, error) {
		resp, err := s.dispatch.ListTasks(d.director, &dispatchv1.ListTasksRequest{TenantId: d.tenant, PageSize: 100})
		return len(resp.GetTasks()), err == nil && len(resp.GetTasks()) == len(completed), err
	})

	records := map[string]record{
		"s1-repair":       {occurred: t0, ratings: map[string]typesv1.Rating{"overall": ratedA, "cleaning": ratedA, "security": ratedB}},
		"s2-maintenance":  {occurred: t0, ratings: map[string]typesv1.Rating{"overall": ratedB, "cleaning": ratedC, "parking": ratedA}},
		"s3-installation": {occurred: t0.Add(-time.Hour), ratings: map[string]typesv1.Rating{"overall": ratedC, "security": ratedA}},
		"s4-delivery":     {occurred: t0, ratings: map[string]typesv1.Rating{"overall": ratedA, "cleaning": ratedB, "security": ratedC}},
	}
	logged := d.work(records, "d-1")
	require.Len(t, logged["s3-installation"].GetComplaintIds(), 1, "an unsatisfied overall rating with no problem opens a complaint")

	// Hand computation (all time; 发出票数 = the 5 visits due, 回收票数 = the 4 records):
	//   - coverage: 4 of 5 served services followed up → 4/5 (80 %, below 90 %);
	//     per visit 4/5; questionnaires returned / sent 4/5;
	//   - within 48 h of the service: s1 10 h, s2 20 h, s3 46 h yes; s4 60 h
	//     no; s5 never → 3/5;
	//   - the policy's deadline (the same 48 h): s1, s2, s3 in time; s4
	//     fired 12 h after its deadline (late) → 3/5, late 1/5;
	//   - 综合评议满意率 overall: A s1, s4; B s2; C s3 → (2 + 1) / 4 = 75 %
	//     (below 85 %); rated by all 4 → 3/4;
	//   - 单项服务满意率 cleaning: A s1, B s4, C s2, blank s3 → (1 + 1) / 4 =
	//     50 % (below 80 %); second figure 2 / 3 rated;
	//     security: B s1, A s3, C s4, blank s2 → 2/4; 2 / 3 rated;
	//     parking: A s2 only → 1/4 = 25 %; 1 / 1 rated = 100 %.
	d.expectFigures(map[string]string{
		"timeliness": "3/5", "late": "1/5", "within_48h": "3/5",
		"coverage": "4/5", "visit_completion": "4/5", "response_rate": "4/5",
		"overall":            "A2 B1 C1: rate 3/4, rated 3/4",
		"overall (aspects)":  "rate 3/4 target 0.85, rated 3/4",
		"cleaning":           "A1 B1 C1: rate 2/4, rated 2/3",
		"cleaning (aspects)": "rate 2/4 target 0.80, rated 2/3",
		"security":           "A1 B1 C1: rate 2/4, rated 2/3",
		"security (aspects)": "rate 2/4 target 0.80, rated 2/3",
		"parking":            "A1 B0 C0: rate 1/4, rated 1/1",
		"parking (aspects)":  "rate 1/4 target 0.80, rated 1/1",
	}, "overall", "cleaning", "security", "parking")

	// The seed's rates and targets as GetSatisfaction states them.
	sat, err := s.analytics.GetSatisfaction(d.director, &analyticsv1.GetSatisfactionRequest{TenantId: d.tenant, Aspect: "cleaning"})
	require.NoError(t, err)
	require.InDelta(t, 0.5, sat.GetRate(), 1e-9, "单项服务满意率 = (1 + 1) / 4")
	require.InDelta(t, 0.8, sat.GetTarget(), 1e-9, "针对具体问题的满意度不应低于80%")
	require.False(t, sat.GetMeetsTarget())
	require.InDelta(t, 2.0/3, sat.GetRatedRate().GetValue(), 1e-9)
	require.False(t, sat.GetRatedRate().GetHasTarget(), "the second figure has no target")
	sat, err = s.analytics.GetSatisfaction(d.director, &analyticsv1.GetSatisfactionRequest{TenantId: d.tenant, Aspect: "overall"})
	require.NoError(t, err)
	require.InDelta(t, 0.75, sat.GetRate(), 1e-9, "综合评议满意率 = (2 + 1) / 4")
	require.InDelta(t, 0.85, sat.GetTarget(), 1e-9, "总体满意度应保持在85%以上")
	require.False(t, sat.GetMeetsTarget())
	cov, err := s.analytics.GetCoverage(d.director, &analyticsv1.GetCoverageRequest{TenantId: d.tenant})
	require.NoError(t, err)
	require.InDelta(t, 0.9, cov.GetCoverage().GetTarget(), 1e-9, "不低于90%的客户应参与回访")
	require.False(t, cov.GetCoverage().GetMeetsTarget())
	require.Equal(t, "s5-complaint", waitFor(t, taskDeadline, "the unclaimed task", func() (string, bool, error) {
		resp, err := s.dispatch.ListTasks(d.director, &dispatchv1.ListTasksRequest{TenantId: d.tenant, PageSize: 100})
		if err != nil {
			return "", false, err
		}
		var open []string
		for _, task := range resp.GetTasks() {
			if task.GetAgentId() == "" {
				open = append(open, task.GetCustomer().GetExternalId()[len("c-"):])
			}
		}
		if len(open) != 1 {
			return "", false, fmt.Errorf("unclaimed tasks: %v", open)
		}
		return open[0], true, nil
	}), "the never-reached service is the one left in the queue")
}
