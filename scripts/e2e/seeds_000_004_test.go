package e2e

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"
	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/issuer"
)

// person is a token of one of a tenant's people: its subject, whether it is
// an agent of dispatch under that id (agents, leaders), the org units it
// leads or belongs to, the departments it answers for, and its roles.
type person struct {
	tenant, id  string
	agent       bool
	units, deps []string
	roles       []auth.Role
}

// as is a context that calls as p.
func (s *system) as(p person) context.Context {
	s.t.Helper()
	rs := make([]string, len(p.roles))
	for i, r := range p.roles {
		rs[i] = string(r)
	}
	agentID := ""
	if p.agent {
		agentID = p.id
	}
	return s.withToken(issuer.Token{Subject: p.id,
		Claims: auth.Claims{Tenant: p.tenant, Roles: rs, AgentID: agentID, OrgUnits: p.units, Departments: p.deps}})
}

// claimAs polls ClaimNextTask with ctx's agent until it hands out a task.
func (s *system) claimAs(ctx context.Context, who string) *dispatchv1.Task {
	s.t.Helper()
	return waitFor(s.t, taskDeadline, "a task for "+who, func() (*dispatchv1.Task, bool, error) {
		resp, err := s.dispatch.ClaimNextTask(ctx, &dispatchv1.ClaimNextTaskRequest{})
		if err != nil {
			return nil, false, err
		}
		return resp.GetTask(), resp.GetTask() != nil, nil
	})
}

// logAs records a visit as ctx's agent, retrying while feedback has not yet
// heard the visit's VisitDue (NotFound) or its latest VisitAssigned (a
// reassigned visit: refused on agent_id, naming the previous agent).
func (s *system) logAs(ctx context.Context, req *feedbackv1.LogVisitRequest) *feedbackv1.VisitRecord {
	s.t.Helper()
	return waitFor(s.t, taskDeadline, "LogVisit "+req.GetVisitId(), func() (*feedbackv1.VisitRecord, bool, error) {
		resp, err := s.feedback.LogVisit(ctx, req)
		if status.Code(err) == codes.NotFound ||
			status.Code(err) == codes.InvalidArgument && strings.Contains(status.Convert(err).Message(), "is assigned to agent") {
			return nil, false, err
		}
		require.NoError(s.t, err, "LogVisit %s", req.GetVisitId())
		return resp.GetRecord(), true, nil
	})
}

// answered records the agent's answered call on the task it holds.
func (s *system) answered(ctx context.Context, task *dispatchv1.Task) {
	s.t.Helper()
	_, err := s.dispatch.RecordAttempt(ctx, &dispatchv1.RecordAttemptRequest{TenantId: task.GetTenantId(), TaskId: task.GetId(),
		LeaseToken: task.GetLeaseToken(), Disposition: typesv1.Disposition_DISPOSITION_ANSWERED})
	require.NoError(s.t, err, "RecordAttempt ANSWERED on %s", task.GetId())
}

// policyVisits lists a tenant's planned visits of a service made by the
// named policy (any status).
func (s *system) policyVisits(tenantID, serviceID, policyName string) []*schedulerv1.PlannedVisit {
	s.t.Helper()
	resp, err := s.scheduler.ListPlannedVisits(s.t.Context(), &schedulerv1.ListPlannedVisitsRequest{TenantId: tenantID, ServiceId: serviceID, PageSize: 500})
	require.NoError(s.t, err)
	var out []*schedulerv1.PlannedVisit
	for _, v := range resp.GetVisits() {
		p, err := s.scheduler.GetPolicy(s.t.Context(), &schedulerv1.GetPolicyRequest{TenantId: tenantID, PolicyId: v.GetPolicyId(), Version: v.GetPolicyVersion()})
		require.NoError(s.t, err)
		if p.GetPolicy().GetName() == policyName {
			out = append(out, v)
		}
	}
	return out
}

// complaintIngress is a complaint the property office's system closed, of
// a resident of org unit east, closed by that office.
func complaintIngress(tenantID, sourceEventID, customerID string, severity typesv1.Severity, completedAt time.Time) string {
	return fmt.Sprintf(`{"tenant_id":%q,"source_system":"erp-demo","source_event_id":%q,"service_type":"complaint_closed","completed_at":%q,"org_unit":"east","customer":{"external_id":%q,"name":"陈静","phone":"+8613600136001","org_unit":"east"},"complaint":{"reference":%q,"severity":%q}}`,
		tenantID, sourceEventID, completedAt.UTC().Format(time.RFC3339), customerID, "ref-"+sourceEventID, severity)
}

// unitIngress is a completed service of a customer of an org unit, served
// by that org unit.
func unitIngress(tenantID, sourceEventID, serviceType, customerID, orgUnit string, completedAt time.Time) string {
	return fmt.Sprintf(`{"tenant_id":%q,"source_system":"erp-demo","source_event_id":%q,"service_type":%q,"completed_at":%q,"org_unit":%q,"customer":{"external_id":%q,"name":"周杰","phone":"+8613600136002","org_unit":%q}}`,
		tenantID, sourceEventID, serviceType, completedAt.UTC().Format(time.RFC3339), orgUnit, customerID, orgUnit)
}

// addMonthIn is one calendar month later on the calendar of loc, on the
// month's last day when it has no such day, at the same local clock time.
func addMonthIn(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	y, m, d := l.Date()
	last := time.Date(y, m+2, 0, 0, 0, 0, 0, loc).Day()
	return time.Date(y, m+1, min(d, last), l.Hour(), l.Minute(), l.Second(), 0, loc)
}

// TestSeed000PropertyAndHospital (issue 16, item 6; seed 000 客户回访制度篇一
// and 患者回访工作制度) plays the property office's and the hospital's programs
// through the front door and compares with a hand computation:
//   - 1.3 "投诉事情处理完毕后三天内进行回访,回访率达50%,一般投诉由物业助理回访,紧要投诉由部门主管回访,重点投诉由公司经理回访":
//     of 5 closed complaints of org unit east in one month, sent one after
//     the other, ceil(0.5 × n) are planned after the n-th (the 1st, 3rd and
//     5th: one general, one urgent, one major), each due at closing and timely
//     for exactly 72 h, for the role of its severity;
//   - 1.4 "维护和修理工程处理完毕后一个月内进行回访,回访率达30%,实在由责任区物业助理负责":
//     of 7 repairs ceil(0.3 × 7) = 3 are planned, each timely for one
//     calendar month, for the property assistant;
//   - 1.9 "在第二次以后的不属于第三类投诉的回访可采纳电话作回访形式" (the major
//     complaint is visited on site) and 1.7 "上门回访必需有客户的签名,电话回访不作此项要求,但在回访记录表中写明“电话回访”":
//     the manager's on-site record is refused without the customer's
//     signature and kept with it, the assistant's call is marked phone;
//   - 1.8 "客服部主管对物业助理的回访工作进行检查并签署看法": the supervisor signs
//     the assistant's record off;
//   - hospital 六 "1. 出院当天……并进行首次电话回访。2. 出院后一周:再次电话回访……3. 出院后一个月:进行现场回访或邮寄问卷":
//     a discharge in a tenant of Asia/Shanghai gets a call the same day
//     (within 12 h), a call a week later and an on-site visit one calendar
//     month later on the Shanghai calendar.
func TestSeed000PropertyAndHospital(t *testing.T) {
	s := setup(t, nil)
	ctx := t.Context()
	asOperator, err := s.issuer.Context(ctx, issuer.Operator())
	require.NoError(t, err)
	const mgmt, clinic = "mgmt", "clinic"
	for tenantID, pack := range map[string]string{mgmt: "property", clinic: "hospital"} {
		_, err := s.scheduler.LoadPolicyPack(asOperator, &schedulerv1.LoadPolicyPackRequest{TenantId: tenantID, Pack: pack})
		require.NoError(t, err, "LoadPolicyPack %s for %s", pack, tenantID)
	}

	// The office's people: an assistant, the department supervisor (a
	// leader) and the company manager (a deputy), all of org unit east.
	admin := s.as(person{tenant: mgmt, id: "admin-1", roles: []auth.Role{auth.TenantAdmin}})
	for _, a := range []*dispatchv1.Agent{
		{Id: "pa-1", Name: "物业助理", Groups: []string{"property_assistant"}, OrgUnit: "east", Role: dispatchv1.Role_ROLE_AGENT},
		{Id: "sup-1", Name: "部门主管", Groups: []string{"department_supervisor"}, OrgUnit: "east", Role: dispatchv1.Role_ROLE_LEADER},
		{Id: "mgr-1", Name: "公司经理", Groups: []string{"company_manager"}, OrgUnit: "east", Role: dispatchv1.Role_ROLE_DEPUTY},
	} {
		a.TenantId = mgmt
		_, err := s.dispatch.UpsertAgent(admin, &dispatchv1.UpsertAgentRequest{Agent: a})
		require.NoError(t, err, "UpsertAgent %s", a.GetId())
	}
	assistant := s.as(person{tenant: mgmt, id: "pa-1", agent: true, units: []string{"east"}, roles: []auth.Role{auth.Agent}})
	supervisor := s.as(person{tenant: mgmt, id: "sup-1", agent: true, units: []string{"east"}, roles: []auth.Role{auth.Leader}})
	manager := s.as(person{tenant: mgmt, id: "mgr-1", agent: true, units: []string{"east"}, roles: []auth.Role{auth.Leader}})

	// Closed complaints, one after the other (the quota depends on the
	// order), all closed at the same moment of one month.
	closed := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	complaints := []struct {
		event    string
		severity typesv1.Severity
	}{
		{"cc-1", typesv1.Severity_SEVERITY_GENERAL},
		{"cc-2", typesv1.Severity_SEVERITY_GENERAL},
		{"cc-3", typesv1.Severity_SEVERITY_URGENT},
		{"cc-4", typesv1.Severity_SEVERITY_URGENT},
		{"cc-5", typesv1.Severity_SEVERITY_MAJOR},
	}
	group := map[typesv1.Severity]string{
		typesv1.Severity_SEVERITY_GENERAL: "property_assistant",
		typesv1.Severity_SEVERITY_URGENT:  "department_supervisor",
		typesv1.Severity_SEVERITY_MAJOR:   "company_manager",
	}
	planned := map[typesv1.Severity]*schedulerv1.PlannedVisit{}
	sampledIn := 0
	for n, c := range complaints {
		s.publish(complaintIngress(mgmt, c.event, "r-"+c.event, c.severity, closed))
		serviceID := s.serviceID(c.event)
		v := waitFor(t, taskDeadline, "the closed-complaint visit of "+c.event, func() (*schedulerv1.PlannedVisit, bool, error) {
			vs := s.policyVisits(mgmt, serviceID, "property-closed-complaint")
			if len(vs) == 0 {
				return nil, false, nil
			}
			return vs[0], true, nil
		})
		// Hand computation: the n-th complaint is planned when fewer than
		// ceil(0.5 × n) were planned before it.
		wantIn := sampledIn < int(math.Ceil(0.5*float64(n+1)))
		require.Equal(t, !wantIn, v.GetStatus() == "suppressed", "%s (complaint %d): planned %v, status %s (%s)", c.event, n+1, wantIn, v.GetStatus(), v.GetReason())
		if !wantIn {
			continue
		}
		sampledIn++
		planned[c.severity] = v
		wantCh := phoneCh
		if c.severity == typesv1.Severity_SEVERITY_MAJOR {
			wantCh = onsiteCh
		}
		require.Equal(t, visitLine("property-closed-complaint", 0, 0, wantCh, group[c.severity], closed, closed.Add(72*time.Hour)),
			visitLine("property-closed-complaint", v.GetStep(), v.GetOccurrence(), v.GetChannel(), v.GetGroup(), v.GetDueAt().AsTime(), v.GetDeadline().AsTime()), c.event)
	}
	require.Equal(t, 3, sampledIn, "ceil(50%% of 5) = 3 closed complaints followed up")
	require.Len(t, planned, 3, "one of each severity: the 1st, 3rd and 5th")

	// Each role claims the complaint of its severity.
	general := s.claimAs(assistant, "the property assistant")
	require.Equal(t, planned[typesv1.Severity_SEVERITY_GENERAL].GetId(), general.GetVisitId())
	require.Equal(t, phoneCh, general.GetChannel())
	urgent := s.claimAs(supervisor, "the department supervisor")
	require.Equal(t, planned[typesv1.Severity_SEVERITY_URGENT].GetId(), urgent.GetVisitId())
	require.Equal(t, dispatchv1.Role_ROLE_LEADER, urgent.GetRequiredRole())
	major := s.claimAs(manager, "the company manager")
	require.Equal(t, planned[typesv1.Severity_SEVERITY_MAJOR].GetId(), major.GetVisitId())
	require.Equal(t, onsiteCh, major.GetChannel(), "seed 000 1.9: the company manager visits a major complaint")
	require.Equal(t, typesv1.Severity_SEVERITY_MAJOR, major.GetSeverity())
	require.Equal(t, dispatchv1.Role_ROLE_DEPUTY, major.GetRequiredRole())

	// 1.7: the phone call is marked phone; the on-site visit needs the signature.
	satisfied := []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}}
	byPhone := s.logAs(assistant, &feedbackv1.LogVisitRequest{TenantId: mgmt, VisitId: general.GetVisitId(), Answers: satisfied})
	require.Equal(t, phoneCh, byPhone.GetChannel(), "电话回访: the record says phone")
	require.Empty(t, byPhone.GetSignatureRef())
	s.answered(assistant, general)
	supRec := s.logAs(supervisor, &feedbackv1.LogVisitRequest{TenantId: mgmt, VisitId: urgent.GetVisitId(), Answers: satisfied})
	require.Equal(t, phoneCh, supRec.GetChannel())
	s.answered(supervisor, urgent)
	unsigned := &feedbackv1.LogVisitRequest{TenantId: mgmt, VisitId: major.GetVisitId(), Answers: satisfied}
	waitFor(t, taskDeadline, "the on-site record refused without a signature", func() (bool, bool, error) {
		_, err := s.feedback.LogVisit(manager, unsigned)
		if status.Code(err) == codes.NotFound {
			return false, false, err
		}
		require.Equal(t, codes.InvalidArgument, status.Code(err), "上门回访必需有客户的签名: %v", err)
		require.Contains(t, status.Convert(err).Message(), "signature")
		return true, true, nil
	})
	unsigned.SignatureRef = "sig-cc-5"
	onSite := s.logAs(manager, unsigned)
	require.Equal(t, onsiteCh, onSite.GetChannel())
	require.Equal(t, "sig-cc-5", onSite.GetSignatureRef())
	s.answered(manager, major)

	// 1.8: the supervisor signs the assistant's record.
	signed, err := s.feedback.SignOffVisitRecord(supervisor, &feedbackv1.SignOffVisitRecordRequest{TenantId: mgmt, RecordId: byPhone.GetId(),
		Approved: true, Note: "已检查,同意"})
	require.NoError(t, err)
	require.Equal(t, "sup-1", signed.GetSignOff().GetLeaderId())
	got, err := s.feedback.GetVisitRecord(supervisor, &feedbackv1.GetVisitRecordRequest{TenantId: mgmt, Id: byPhone.GetId()})
	require.NoError(t, err)
	require.Len(t, got.GetSignOffs(), 1)
	require.True(t, got.GetSignOffs()[0].GetApproved())
	require.Equal(t, "已检查,同意", got.GetSignOffs()[0].GetNote())
	require.Equal(t, "east", got.GetRecord().GetOrgUnit())

	// 1.4: repairs, 30% of the month's.
	const repairs = 7
	repairIDs := make([]string, repairs)
	for i := range repairs {
		s.publish(unitIngress(mgmt, fmt.Sprintf("rp-%d", i+1), "repair", fmt.Sprintf("r-rp-%d", i+1), "east", closed))
	}
	for i := range repairs {
		repairIDs[i] = s.serviceID(fmt.Sprintf("rp-%d", i+1))
	}
	waitFor(t, taskDeadline, "a repair visit for each repair", func() (bool, bool, error) {
		for _, id := range repairIDs {
			if len(s.policyVisits(mgmt, id, "property-repair")) == 0 {
				return false, false, nil
			}
		}
		return true, true, nil
	})
	var in, out int
	for _, id := range repairIDs {
		vs := s.policyVisits(mgmt, id, "property-repair")
		require.Len(t, vs, 1)
		v := vs[0]
		if v.GetStatus() == "suppressed" {
			out++
			continue
		}
		in++
		require.Equal(t, visitLine("property-repair", 0, 0, phoneCh, "property_assistant", closed, addMonth(closed)),
			visitLine("property-repair", v.GetStep(), v.GetOccurrence(), v.GetChannel(), v.GetGroup(), v.GetDueAt().AsTime(), v.GetDeadline().AsTime()))
	}
	require.Equal(t, 3, in, "ceil(30%% of 7) = ceil(2.1) = 3 repairs followed up")
	require.Equal(t, 4, out)

	// The hospital, in Shanghai.
	_, err = s.scheduler.SetContactPolicy(s.as(person{tenant: clinic, id: "admin-2", roles: []auth.Role{auth.TenantAdmin}}),
		&schedulerv1.SetContactPolicyRequest{TenantId: clinic, ContactPolicy: &schedulerv1.ContactPolicy{TimeZone: "Asia/Shanghai"}})
	require.NoError(t, err)
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	// Two discharges: an hour ago, and at 03:00 on the 1st of the month in
	// Shanghai (19:00 UTC the day before, so a calendar month counted in
	// UTC would land on another day when the month before is shorter than
	// 31 days).
	now := time.Now()
	first := time.Date(now.In(shanghai).Year(), now.In(shanghai).Month(), 1, 3, 0, 0, 0, shanghai)
	if first.After(now.Add(-time.Hour)) {
		first = first.AddDate(0, -1, 0)
	}
	for event, discharged := range map[string]time.Time{
		"discharge-1": now.Add(-time.Hour).Truncate(time.Second).UTC(),
		"discharge-2": first.UTC(),
	} {
		s.publish(unitIngress(clinic, event, "discharge", "p-"+event, "ward-3", discharged))
		dischargeID := s.serviceID(event)
		waitFor(t, taskDeadline, "the three visits of "+event, func() (bool, bool, error) {
			return true, len(s.visitLines(clinic, dischargeID, "hospital-discharge")) >= 3, nil
		})
		s.drained()
		week := discharged.Add(7 * 24 * time.Hour)
		month := addMonthIn(discharged, shanghai)
		require.Equal(t, discharged.In(shanghai).Format("15:04:05"), month.In(shanghai).Format("15:04:05"), "the same local time a calendar month later")
		wantHospital := []string{
			// 出院当天 首次电话回访: at discharge, within 12 h.
			want("hospital-discharge", 0, phoneCh, "nurse", discharged, discharged.Add(12*time.Hour)),
			// 出院后一周 再次电话回访: 7 days later, timely for 2 days.
			want("hospital-discharge", 1, phoneCh, "nurse", week, week.Add(48*time.Hour)),
			// 出院后一个月 现场回访: a calendar month later in Shanghai, timely for a week.
			want("hospital-discharge", 2, onsiteCh, "nurse", month, month.Add(7*24*time.Hour)),
		}
		slices.Sort(wantHospital)
		require.Equal(t, wantHospital, s.visitLines(clinic, dischargeID, "hospital-discharge", "hospital-first-week"),
			"%s (%s in Shanghai): hospital-first-week is loaded off: one program, three visits", event, discharged.In(shanghai).Format(time.DateTime))
	}
}

// TestSeed004FollowUpCenter (issue 16, item 6; seed 004 隨訪中心管理制度)
// plays the follow-up center's workflows through the front door:
//   - 三、(一)3 "隨訪計劃經隨訪中心主任審核後報上級領導批準實施": the plan (a call
//     on each repair, timely for 2 days, for group g1) runs only once the
//     director approved it;
//   - 二、(二)3 "隨訪小組組長……合理安排隨訪任務": the leader moves a task an
//     agent claimed to another agent (ReassignTask), who makes the call;
//   - 三、(四)2 "隨訪記錄應字跡清晰、內容完整,不得隨意涂改": a corrected record
//     keeps its original and says who changed what and why (AmendVisitRecord);
//   - 三、(五)3–4 "確認客戶是否滿意……對於客戶不滿意的處理結果,應重新進行溝通和協調,直至客戶滿意為止":
//     an unsatisfied customer's complaint is resolved, confirmed unsatisfied
//     (reopened, one rank up: the leader's), resolved again, confirmed
//     satisfied, closed;
//   - 四、(二)1 "定期抽查隨訪記錄" and 四、(三)1 "對隨訪專員的工作質量進行量化考核":
//     the leader samples an agent's records (SampleForReview) and reviews
//     one (SubmitReview, 17 of 20 → 85);
//   - 四、(二)2 "對隨訪時間進行監控" and 四、(三)2 考核指標: the agents' scorecards
//     and the timeliness equal the hand computation below.
func TestSeed004FollowUpCenter(t *testing.T) {
	s := setup(t, nil)
	const center = "center"
	admin := s.as(person{tenant: center, id: "admin-1", roles: []auth.Role{auth.TenantAdmin}})
	director := s.as(person{tenant: center, id: "dir-1", roles: []auth.Role{auth.Director}})
	a1 := s.as(person{tenant: center, id: "a-1", agent: true, units: []string{"g1"}, roles: []auth.Role{auth.Agent}})
	a2 := s.as(person{tenant: center, id: "a-2", agent: true, units: []string{"g1"}, roles: []auth.Role{auth.Agent}})
	leader := s.as(person{tenant: center, id: "lead-1", agent: true, units: []string{"g1"}, roles: []auth.Role{auth.Leader, auth.QAReviewer}})
	department := s.as(person{tenant: center, id: "dept-1", deps: []string{"after_sales"}, roles: []auth.Role{auth.DepartmentOwner}})

	// 二、(一): the center, a group with its leader, two agents.
	for _, u := range []*dispatchv1.OrgUnit{
		{Id: "center", Name: "隨訪中心", Kind: "center"},
		{Id: "g1", Name: "第一組", Kind: "group", ParentId: "center", LeaderId: "lead-1"},
	} {
		u.TenantId = center
		_, err := s.dispatch.UpsertOrgUnit(admin, &dispatchv1.UpsertOrgUnitRequest{Unit: u})
		require.NoError(t, err, "UpsertOrgUnit %s", u.GetId())
	}
	for _, a := range []*dispatchv1.Agent{
		{Id: "a-1", Name: "隨訪專員甲", Groups: []string{"g1"}, OrgUnit: "g1", Role: dispatchv1.Role_ROLE_AGENT},
		{Id: "a-2", Name: "隨訪專員乙", Groups: []string{"g1"}, OrgUnit: "g1", Role: dispatchv1.Role_ROLE_AGENT},
		{Id: "lead-1", Name: "組長", Groups: []string{"g1"}, OrgUnit: "g1", Role: dispatchv1.Role_ROLE_LEADER},
	} {
		a.TenantId = center
		_, err := s.dispatch.UpsertAgent(admin, &dispatchv1.UpsertAgentRequest{Agent: a})
		require.NoError(t, err, "UpsertAgent %s", a.GetId())
	}

	// The plan, approved by the director before it runs (the approval
	// workflow has its own test, TestPlanApprovedBeforeItRuns).
	_, err := s.scheduler.SetPolicyApproval(admin, &schedulerv1.SetPolicyApprovalRequest{TenantId: center, Required: true})
	require.NoError(t, err)
	const policyJSON = `{"name":"center-repair-call","tenant_id":"center","source_rule":"seed 004: the annual plan, approved by the director",
	  "trigger":{"service_types":["repair"]},"steps":[{"offset":"0s","window":"172800s","channel":"CHANNEL_PHONE","group":"g1"}]}`
	create := &schedulerv1.CreatePolicyRequest{}
	require.NoError(t, protojson.Unmarshal([]byte(`{"policy":`+policyJSON+`}`), create))
	_, err = s.scheduler.CreatePolicy(admin, create)
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "not before the director approves: %v", err)
	propose := &schedulerv1.ProposePolicyChangeRequest{}
	require.NoError(t, protojson.Unmarshal([]byte(`{"tenant_id":"center","create":{"policy":`+policyJSON+`},
	  "reason":"seed 004: the annual plan","synthetic":{"services_per_day":10,"days":2,"service_types":["repair"]}}`), propose))
	proposed, err := s.scheduler.ProposePolicyChange(admin, propose)
	require.NoError(t, err)
	approved, err := s.scheduler.ApprovePolicyChange(director, &schedulerv1.ApprovePolicyChangeRequest{TenantId: center,
		ChangeId: proposed.GetChange().GetId(), Note: "年度隨訪計劃"})
	require.NoError(t, err)
	require.Equal(t, "approved", approved.GetChange().GetState())
	require.Equal(t, "dir-1", approved.GetChange().GetDecidedBy())

	// Repair 1: a-1 claims it, the leader moves it to a-2, who calls.
	completed := time.Now().Add(-time.Minute).Truncate(time.Second).UTC()
	s.publish(unitIngress(center, "repair-1", "repair", "c-1", "g1", completed))
	t1 := s.claimAs(a1, "a-1")
	require.Equal(t, "c-1", t1.GetCustomer().GetExternalId())
	require.Equal(t, "g1", t1.GetGroup())
	moved, err := s.dispatch.ReassignTask(leader, &dispatchv1.ReassignTaskRequest{TenantId: center, TaskId: t1.GetId(),
		LeaderId: "lead-1", ToAgentId: "a-2", Reason: "a-1 is on leave this afternoon"})
	require.NoError(t, err)
	require.Equal(t, "a-2", moved.GetTask().GetAgentId())
	require.Greater(t, moved.GetTask().GetLeaseToken(), t1.GetLeaseToken(), "a new claim")
	_, err = s.dispatch.RecordAttempt(a1, &dispatchv1.RecordAttemptRequest{TenantId: center, TaskId: t1.GetId(),
		LeaseToken: t1.GetLeaseToken(), Disposition: typesv1.Disposition_DISPOSITION_ANSWERED})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "a-1 no longer holds the task: %v", err)
	satisfied := []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}}
	unsatisfied := []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_UNSATISFIED, Comment: "維修後仍然漏水"}}
	r1 := s.logAs(a2, &feedbackv1.LogVisitRequest{TenantId: center, VisitId: t1.GetVisitId(), Answers: satisfied})
	require.Equal(t, "a-2", r1.GetAgentId())
	s.answered(a2, moved.GetTask())

	// Repairs 2 and 3: a-1 calls both; customer 3 is not satisfied.
	s.publish(unitIngress(center, "repair-2", "repair", "c-2", "g1", completed))
	s.publish(unitIngress(center, "repair-3", "repair", "c-3", "g1", completed))
	byCustomer := map[string]*dispatchv1.Task{}
	for range 2 {
		task := s.claimAs(a1, "a-1")
		byCustomer[task.GetCustomer().GetExternalId()] = task
	}
	require.Contains(t, byCustomer, "c-2")
	require.Contains(t, byCustomer, "c-3")
	r2 := s.logAs(a1, &feedbackv1.LogVisitRequest{TenantId: center, VisitId: byCustomer["c-2"].GetVisitId(), Answers: satisfied,
		Comments: "客戶滿意"})
	s.answered(a1, byCustomer["c-2"])
	r3 := s.logAs(a1, &feedbackv1.LogVisitRequest{TenantId: center, VisitId: byCustomer["c-3"].GetVisitId(), Answers: unsatisfied,
		Problems: []*typesv1.Problem{{Category: "service_quality", Description: "維修師傅沒有修好漏水"}}})
	s.answered(a1, byCustomer["c-3"])
	require.Len(t, r3.GetComplaintIds(), 1)
	complaintID := r3.GetComplaintIds()[0]

	// 三、(四)2: a correction keeps the original and says who and why.
	amended, err := s.feedback.AmendVisitRecord(a1, &feedbackv1.AmendVisitRecordRequest{TenantId: center, RecordId: r2.GetId(),
		Reason: "記錄時漏寫了客戶的建議", Comments: ptr("客戶滿意,建議縮短上門等候時間")})
	require.NoError(t, err)
	require.NotNil(t, amended)
	history, err := s.feedback.GetVisitRecord(leader, &feedbackv1.GetVisitRecordRequest{TenantId: center, Id: r2.GetId()})
	require.NoError(t, err)
	require.Equal(t, "客戶滿意", history.GetRecord().GetComments(), "the record as logged is kept")
	require.Len(t, history.GetAmendments(), 1)
	require.Equal(t, "a-1", history.GetAmendments()[0].GetBy())
	require.Equal(t, "記錄時漏寫了客戶的建議", history.GetAmendments()[0].GetReason())
	require.NotEmpty(t, history.GetAmendments()[0].GetChanges())
	require.Equal(t, "客戶滿意,建議縮短上門等候時間", history.GetCurrent().GetComments())

	// 三、(五): the department answers, the agent confirms; unsatisfied, again until satisfied.
	resolve := func(round string) {
		_, err := s.feedback.AcknowledgeComplaint(department, &feedbackv1.AcknowledgeComplaintRequest{TenantId: center, ComplaintId: complaintID})
		require.NoError(t, err, "acknowledge (%s)", round)
		_, err = s.feedback.ResolveComplaint(department, &feedbackv1.ResolveComplaintRequest{TenantId: center, ComplaintId: complaintID,
			RootCause: "防水層老化", Action: round})
		require.NoError(t, err, "resolve (%s)", round)
	}
	resolve("重新做防水")
	c1 := s.claimAs(a1, "a-1 (the first confirmation)")
	require.Equal(t, "c-3", c1.GetCustomer().GetExternalId())
	rc1 := s.logAs(a1, &feedbackv1.LogVisitRequest{TenantId: center, VisitId: c1.GetVisitId(), Answers: unsatisfied})
	require.Equal(t, complaintID, rc1.GetConfirmedComplaintId())
	s.answered(a1, c1)
	reopened, err := s.feedback.GetComplaint(leader, &feedbackv1.GetComplaintRequest{TenantId: center, Id: complaintID})
	require.NoError(t, err)
	require.Equal(t, "open", reopened.GetComplaint().GetStatus(), "unsatisfied: reopened")
	require.Equal(t, int32(1), reopened.GetComplaint().GetLevel())
	require.Equal(t, "urgent", reopened.GetComplaint().GetSeverity(), "one rank up")
	resolve("更換整段水管")
	c2 := s.claimAs(leader, "the leader (an urgent confirmation)")
	require.Equal(t, "c-3", c2.GetCustomer().GetExternalId())
	require.Equal(t, typesv1.Severity_SEVERITY_URGENT, c2.GetSeverity())
	rc2 := s.logAs(leader, &feedbackv1.LogVisitRequest{TenantId: center, VisitId: c2.GetVisitId(), Answers: satisfied})
	require.Equal(t, complaintID, rc2.GetConfirmedComplaintId())
	s.answered(leader, c2)
	closedC, err := s.feedback.GetComplaint(leader, &feedbackv1.GetComplaintRequest{TenantId: center, Id: complaintID})
	require.NoError(t, err)
	require.Equal(t, "closed", closedC.GetComplaint().GetStatus(), "直至客戶滿意為止")
	require.Equal(t, "satisfied", closedC.GetComplaint().GetOutcome())

	// 四、(二)1: the leader samples a-1's records of the period and reviews one.
	from, to := midnight(-1), midnight(2)
	sample := func(size int32) []string {
		resp, err := s.feedback.SampleForReview(leader, &feedbackv1.SampleForReviewRequest{TenantId: center, AgentId: "a-1",
			PeriodStart: timestamppb.New(from), PeriodEnd: timestamppb.New(to), Size: size})
		require.NoError(t, err)
		require.Equal(t, int32(3), resp.GetPopulation(), "a-1 logged three records")
		var ids []string
		for _, r := range resp.GetRecords() {
			ids = append(ids, r.GetId())
		}
		return ids
	}
	all := sample(3)
	loggedByA1 := []string{r2.GetId(), r3.GetId(), rc1.GetId()}
	require.ElementsMatch(t, loggedByA1, all)
	two := sample(2)
	require.Equal(t, all[:2], two, "reproducible: a smaller sample is a prefix")
	review, err := s.feedback.SubmitReview(leader, &feedbackv1.SubmitReviewRequest{TenantId: center, RecordId: two[0],
		Scores: []*feedbackv1.ChecklistScore{
			{Item: "identity_confirmed", Score: 5}, {Item: "purpose_stated", Score: 4},
			{Item: "script_followed", Score: 5}, {Item: "answers_complete", Score: 3},
		}, Comments: "未完整記錄客戶建議"})
	require.NoError(t, err)
	require.Equal(t, int32(85), review.GetReview().GetScore(), "round((5+4+5+3) / 20 × 100) = 85")
	require.Equal(t, "a-1", review.GetReview().GetAgentId())

	// 四、(二)2 and (三): the scorecards by hand. Visits due: t1 (a-2 after
	// the reassignment), t2, t3, c1 (a-1), c2 (lead-1); each made within
	// its deadline (2 days, 48 h for confirmations) with an answered call.
	// Overall votes: a-1 satisfied on t2, unsatisfied on t3 and c1 → 1/3;
	// a-2 1/1; lead-1 1/1. Reviews: a-1 one, 85. Incentive (seed 000's
	// default rule, 0.5 yuan a message in time): a-1 150 fen, a-2 and lead-1
	// 50 fen; unit g1 all in time: the manager +100 yuan, the director +200.
	type card struct {
		Agent                                   string
		Due, Done                               int64
		OnTime, WithDeadline                    int64
		Contacted, Attempted                    int64
		Satisfied, Returned, Reviews, Incentive int64
		ReviewScore                             float64
	}
	wantCards := []card{
		{"a-1", 3, 3, 3, 3, 3, 3, 1, 3, 1, 150, 85},
		{"a-2", 1, 1, 1, 1, 1, 1, 1, 1, 0, 50, 0},
		{"lead-1", 1, 1, 1, 1, 1, 1, 1, 1, 0, 50, 0},
	}
	cardsOf := func(resp *analyticsv1.GetAgentScorecardsResponse) []card {
		var out []card
		for _, c := range resp.GetScorecards() {
			out = append(out, card{c.GetAgentId(), c.GetDue(), c.GetDone(),
				c.GetTimeliness().GetNumerator(), c.GetTimeliness().GetDenominator(),
				c.GetContactSuccess().GetNumerator(), c.GetContactSuccess().GetDenominator(),
				c.GetSatisfaction().GetNumerator(), c.GetSatisfaction().GetDenominator(), c.GetReviews(), c.GetIncentiveFen(), c.GetReviewScore()})
		}
		return out
	}
	scope := &analyticsv1.GetAgentScorecardsRequest{TenantId: center, From: timestamppb.New(from), To: timestamppb.New(to)}
	cards := waitFor(t, taskDeadline, "the scorecards to count every visit and the review", func() (*analyticsv1.GetAgentScorecardsResponse, bool, error) {
		resp, err := s.analytics.GetAgentScorecards(director, scope)
		return resp, err == nil && slices.Equal(cardsOf(resp), wantCards), err
	})
	require.Equal(t, wantCards, cardsOf(cards))
	ledger := map[string]int64{}
	for _, l := range cards.GetIncentives() {
		ledger[l.GetRole()+" "+l.GetWho()] = l.GetAmountFen()
	}
	require.Equal(t, map[string]int64{"agent a-1": 150, "agent a-2": 50, "agent lead-1": 50, "manager g1": 10000, "director center": 20000}, ledger)

	// The leader sees the same for its group.
	mine, err := s.analytics.GetAgentScorecards(leader, &analyticsv1.GetAgentScorecardsRequest{TenantId: center,
		From: timestamppb.New(from), To: timestamppb.New(to), Filter: &analyticsv1.Filter{OrgUnit: "g1"}})
	require.NoError(t, err)
	require.Equal(t, wantCards, cardsOf(mine))

	// Timeliness: 5 visits due with a deadline, 5 made by it, none fired
	// late; each made within 48 h of its service (the repair, or the
	// resolution a confirmation follows).
	tl := waitFor(t, taskDeadline, "the timeliness of the five visits", func() (*analyticsv1.GetTimelinessResponse, bool, error) {
		resp, err := s.analytics.GetTimeliness(director, &analyticsv1.GetTimelinessRequest{TenantId: center, From: timestamppb.New(from), To: timestamppb.New(to)})
		return resp, err == nil && resp.GetPolicyDeadline().GetDenominator() == 5 && resp.GetWithin_48H().GetDenominator() == 5, err
	})
	require.Equal(t, [2]int64{5, 5}, [2]int64{tl.GetPolicyDeadline().GetNumerator(), tl.GetPolicyDeadline().GetDenominator()}, tl.GetPolicyDeadline().GetFormula())
	require.Equal(t, [2]int64{0, 5}, [2]int64{tl.GetLate().GetNumerator(), tl.GetLate().GetDenominator()}, tl.GetLate().GetFormula())
	require.Equal(t, [2]int64{5, 5}, [2]int64{tl.GetWithin_48H().GetNumerator(), tl.GetWithin_48H().GetDenominator()}, tl.GetWithin_48H().GetFormula())
}

func ptr[T any](v T) *T { return &v }
