package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

// deskPolicy is a phone follow-up of installations by the group "default"
// within an hour: its tasks are near their deadline at once (dispatch's
// SLA_WARN is 6 h), so they show in the leader's deadline list.
const deskPolicy = `{"policy":{"name":"desk","trigger":{"service_types":["installation"]},"steps":[{"offset":"0s","window":"3600s","channel":"CHANNEL_PHONE","group":"default"}]}}`

// Parts of a live page are replaced when they reload: the test reads them
// with eventually and until (in the page), not with text (node by node).

// ready waits until the page has loaded whole and the expression holds:
// the steps that follow act on nodes of the loaded document, not on one
// being replaced.
func (p *page) ready(what, expr string) {
	p.t.Helper()
	p.until(what, `document.readyState === "complete" && (`+expr+`)`)
}

// TestConsoleDesk runs the leader's and director's desk in a browser,
// through the front door: a service on the NATS ingress becomes a task;
// the agent's visit with one unsatisfied aspect opens a complaint routed
// to after_sales; the leader's wallboard follows the tasks live and a task
// near its deadline is reassigned; the department owner sees the
// complaint, watches it move live, is refused a resolution without its
// note and resolves it; a QA reviewer samples the agent's records and
// reviews one; an agent is refused the desk.
func TestConsoleDesk(t *testing.T) {
	s := setup(t, nil)
	s.prepare()
	req := &schedulerv1.CreatePolicyRequest{}
	require.NoError(t, protojson.Unmarshal([]byte(deskPolicy), req))
	_, err := s.scheduler.CreatePolicy(t.Context(), req)
	require.NoError(t, err, "CreatePolicy desk")
	for _, a := range []*dispatchv1.Agent{
		{Id: "l-1", TenantId: tenant, Name: "王强", Groups: []string{"default"}, Role: dispatchv1.Role_ROLE_LEADER},
		{Id: "a-2", TenantId: tenant, Name: "张伟", Groups: []string{"default"}},
	} {
		_, err := s.dispatch.UpsertAgent(t.Context(), &dispatchv1.UpsertAgentRequest{Agent: a})
		require.NoError(t, err, "UpsertAgent %s", a.GetId())
	}
	url := s.console("default")

	// The agent's visit (gRPC, as the workbench would log it): one aspect
	// unsatisfied, a service-quality problem, routed to after_sales.
	s.publish(ingress("e-desk-1", "repair", "c-desk-1", "王芳", "+8613800138000", time.Now()))
	task := s.claim()
	rec := s.logVisit(&feedbackv1.LogVisitRequest{
		TenantId: tenant, VisitId: task.GetVisitId(), AgentId: agent,
		Answers: []*typesv1.Answer{
			{Aspect: "overall", Rating: typesv1.Rating_RATING_FAIRLY_SATISFIED},
			{Aspect: "staff_attitude", Rating: typesv1.Rating_RATING_UNSATISFIED, Comment: "师傅态度差"},
		},
		Problems: []*typesv1.Problem{{Category: "service_quality", Description: "维修师傅态度差，没有解释故障原因"}},
	})
	require.Len(t, rec.GetComplaintIds(), 1)
	complaintID := rec.GetComplaintIds()[0]

	// The leader's wallboard: the agent's task is in progress, and a task
	// that arrives shows without reloading the page.
	leader := browser(t, url)
	leader.signIn("/desk", "leader")
	leader.until("the wallboard follows its watch", `(() => { const e = document.querySelector('[data-testid="wallboard"]'); return !!e && e.dataset.following === "1" && !!e.dataset.loaded; })()`)
	leader.until("the agent's task is in progress", `document.querySelector('[data-testid="board-total"] [data-testid="in-progress"]').innerText.trim() === "1"`)
	leader.until("mark the page", `(window.deskMark = 1) === 1`)
	s.publish(ingress("e-desk-2", "installation", "c-desk-2", "李雷", "+8613900139000", time.Now()))
	leader.until("the new task waits on the wallboard, live", `window.deskMark === 1 && document.querySelector('[data-testid="board-row"][data-group="default"] [data-testid="waiting"]') !== null && document.querySelector('[data-testid="board-row"][data-group="default"] [data-testid="waiting"]').innerText.trim() === "1"`)
	leader.ready("the task near its deadline is listed, live", `window.deskMark === 1 && document.querySelector('[data-testid="deadline-row"]') !== null`)
	leader.eventually(`[data-testid="deadline-row"] [data-testid="stage"]`, "临近")

	// Reassign it to a-2.
	// Choosing holds the live reloads of the list (console.js), so the
	// wallboard's refresh does not wipe the choice.
	leader.do("reassign to a-2",
		chromedp.Focus(chromedp.CSS(`[data-testid="deadline-row"] [data-testid="reassign-to"]`)),
		chromedp.SetValue(chromedp.CSS(`[data-testid="deadline-row"] [data-testid="reassign-to"]`), "a-2"),
		chromedp.Click(chromedp.CSS(`[data-testid="deadline-row"] [data-testid="reassign"]`)),
	)
	leader.eventually(`.note`, "任务已改派")
	leader.eventually(`[data-testid="deadline-row"]`, "a-2")
	leader.until("a-2 holds a task", `(() => { const e = document.querySelector('[data-testid="agent-state"][data-agent="a-2"] td.num'); return !!e && e.innerText.trim() === "1"; })()`)
	leader.screenshot("desk-wallboard")

	// A director's desk shows every group.
	director := browser(t, url)
	director.signIn("/desk", "director")
	director.ready("the director's wallboard", `document.querySelector('[data-testid="board-row"][data-group="default"]') !== null`)

	// The department owner: the complaint in the list, then its page.
	owner := browser(t, url)
	owner.signIn("/complaints", "owner")
	row := fmt.Sprintf(`[data-testid="complaint-row"][data-complaint=%q]`, complaintID)
	owner.ready("the complaint is listed", fmt.Sprintf(`document.querySelector(%q) !== null`, row))
	require.Contains(t, owner.text(row), "after_sales")
	owner.screenshot("complaints")
	owner.do("open the complaint", chromedp.Click(chromedp.CSS(row+` [data-testid="complaint-link"]`)))
	owner.ready("the complaint follows its watch", `(() => { const e = document.querySelector('[data-testid="complaint"]'); return !!e && e.dataset.following === "1" && !!e.dataset.loaded; })()`)
	owner.until("mark the page", `(window.deskMark = 1) === 1`)

	// Someone else acknowledges it: the page shows it live.
	_, err = s.feedback.AcknowledgeComplaint(t.Context(), &feedbackv1.AcknowledgeComplaintRequest{TenantId: tenant, ComplaintId: complaintID})
	require.NoError(t, err)
	status := `(() => { const e = document.querySelector('[data-testid="complaint"] [data-testid="complaint-status"]'); return e ? e.dataset.status : ""; })()`
	owner.until("acknowledged, live", `window.deskMark === 1 && `+status+` === "acknowledged"`)

	// Resolving without the required note is refused, field by field.
	owner.do("resolve without a note", chromedp.Click(chromedp.CSS(`[data-testid="resolve-form"] [data-testid="resolve"]`)))
	owner.refused(400)
	owner.ready("the violation shows at its field", `document.querySelector('[data-testid="violation-root_cause"]') !== null`)
	require.Contains(t, owner.text(`[data-testid="problem"]`), "root_cause")

	owner.do("resolve with the note",
		chromedp.SendKeys(chromedp.CSS(`#root_cause`), "师傅未按规范沟通"),
		chromedp.SendKeys(chromedp.CSS(`#action`), "培训并致歉"),
		chromedp.Click(chromedp.CSS(`[data-testid="resolve-form"] [data-testid="resolve"]`)),
	)
	owner.until("resolved", status+` === "resolved"`)
	owner.until("the history has the resolution", `document.querySelector('[data-testid="complaint-step"][data-kind="resolved"]') !== null`)
	owner.eventually(`[data-testid="complaint-root-cause"]`, "师傅未按规范沟通")
	owner.screenshot("complaint")

	// A QA reviewer samples the agent's records of the week and reviews one.
	qa := browser(t, url)
	qa.signIn("/qa?agent="+agent, "qa")
	sample := fmt.Sprintf(`[data-testid="sample-row"][data-record=%q]`, rec.GetId())
	qa.ready("the record is in the sample", fmt.Sprintf(`document.querySelector(%q) !== null`, sample))
	qa.screenshot("qa")
	qa.do("open the review form", chromedp.Click(chromedp.CSS(sample+` [data-testid="review-link"]`)))
	qa.ready("the review form", `document.querySelector('[data-testid="review-form"]') !== null`)
	// A review that leaves the checklist unscored is refused, item by item.
	qa.do("submit an empty review", chromedp.Click(chromedp.CSS(`[data-testid="submit-review"]`)))
	qa.refused(400)
	qa.ready("the refusal names the unscored items", `(() => { const e = document.querySelector('[data-testid="problem"]'); return !!e && e.innerText.includes("identity_confirmed") && document.querySelector('[data-testid="review-form"]') !== null; })()`)
	steps := []chromedp.Action[chromedp.Void]{}
	for item, score := range map[string]string{"identity_confirmed": "5", "purpose_stated": "5", "script_followed": "4", "answers_complete": "5"} {
		steps = append(steps, chromedp.SetValue(chromedp.CSS(`[data-testid="score-`+item+`"]`), score))
	}
	steps = append(steps, chromedp.SendKeys(chromedp.CSS(`#comments`), "话术基本规范"),
		chromedp.Click(chromedp.CSS(`[data-testid="submit-review"]`)))
	qa.do("score the checklist", steps...)
	qa.eventually(`.note`, "评审已记录")
	require.Equal(t, "95", strings.TrimSpace(qa.text(`[data-testid="review-row"] [data-testid="review-score"]`)), "(5+5+4+5)/20")
	qa.screenshot("qa-review")

	// An agent is refused the desk.
	ag := browser(t, url)
	ag.signIn("/desk", "agent")
	ag.refused(403)
	require.Contains(t, ag.text(`[data-testid="problem"]`), "拒绝")
}
