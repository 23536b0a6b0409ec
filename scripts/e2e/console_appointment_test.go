package e2e

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
)

// onsitePolicy follows installations up on site, in group default.
const onsitePolicy = `{"policy":{"name":"onsite","trigger":{"service_types":["installation"]},"steps":[{"offset":"0s","window":"172800s","channel":"CHANNEL_ONSITE","group":"default"}]}}`

// TestConsoleAgentBooksAnAppointment: an installation followed up on site
// comes in on the NATS ingress; the agent claims it in the console, is
// refused an appointment that ends before it starts (the violation shown),
// books one for tomorrow 10:00–11:00 in its own time zone, and the task
// page shows the appointment; dispatch holds it at that time.
func TestConsoleAgentBooksAnAppointment(t *testing.T) {
	s := setup(t, nil)
	s.prepare()
	req := &schedulerv1.CreatePolicyRequest{}
	require.NoError(t, protojson.Unmarshal([]byte(onsitePolicy), req))
	_, err := s.scheduler.CreatePolicy(t.Context(), req)
	require.NoError(t, err, "CreatePolicy onsite")
	url := s.console("default")

	s.publish(ingress("e-onsite-1", "installation", "c-onsite-1", "王芳", "+8613800138001", time.Now()))
	p := browser(t, url)
	p.signIn("/agent", "agent")
	p.do("switch to English", chromedp.SetValue(chromedp.CSS(`#lang`), "en"), chromedp.Submit(chromedp.CSS(`#lang`)))
	p.until("the follow-up in the queue", `document.querySelectorAll('[data-testid="queue-task"]').length === 1`)
	task, _ := p.claimTask()
	p.until("the appointment form", `document.querySelector('[data-testid="appointment-form"]') !== null`)

	shanghai, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	day := time.Now().In(shanghai).AddDate(0, 0, 1)
	at := func(h int) string {
		return time.Date(day.Year(), day.Month(), day.Day(), h, 0, 0, 0, shanghai).Format("2006-01-02T15:04")
	}

	p.do("book backwards", chromedp.SetValue(chromedp.CSS(`#starts-at`), at(11)), chromedp.SetValue(chromedp.CSS(`#ends-at`), at(10)),
		chromedp.Click(chromedp.CSS(`[data-testid="book"]`)))
	p.refused(400)
	p.eventually(`[data-testid="problem"]`, "ends_at")

	p.do("book 10:00–11:00", chromedp.SetValue(chromedp.CSS(`#starts-at`), at(10)), chromedp.SetValue(chromedp.CSS(`#ends-at`), at(11)),
		chromedp.SetValue(chromedp.CSS(`#address-note`), "the back door"),
		chromedp.Click(chromedp.CSS(`[data-testid="book"]`)))
	p.eventually(`[data-testid="appointment-booked"]`, at(10)[:10]+" 10:00")

	list, err := s.dispatch.ListAppointments(t.Context(), &dispatchv1.ListAppointmentsRequest{TenantId: tenant, AgentId: agent})
	require.NoError(t, err)
	require.Len(t, list.GetAppointments(), 1)
	require.Equal(t, task, list.GetAppointments()[0].GetTaskId())
	require.True(t, list.GetAppointments()[0].GetStartsAt().AsTime().Equal(time.Date(day.Year(), day.Month(), day.Day(), 10, 0, 0, 0, shanghai)))
}
