package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
	watchv1 "github.com/huifang/huifang/proto/huifang/watch/v1"

	"github.com/huifang/huifang/pkg/auth"
)

// boardFeed reads a WatchWallboard stream in the background, so that the
// test can wait for the board it expects while the day goes on.
type boardFeed struct {
	updates chan *dispatchv1.WatchWallboardResponse
	errs    chan error
}

func watchBoard(t *testing.T, ctx context.Context, c dispatchv1.DispatchServiceClient, req *dispatchv1.WatchWallboardRequest) *boardFeed {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	stream, err := c.WatchWallboard(ctx, req)
	require.NoError(t, err)
	f := &boardFeed{updates: make(chan *dispatchv1.WatchWallboardResponse, 256), errs: make(chan error, 1)}
	go func() {
		for {
			u, err := stream.Recv()
			if err != nil {
				f.errs <- err
				return
			}
			f.updates <- u
		}
	}()
	return f
}

// until returns the first update whose group board satisfies ok; it fails
// the test after taskDeadline or when the stream ends.
func (f *boardFeed) until(t *testing.T, what string, ok func(*dispatchv1.GroupBoard) bool) *dispatchv1.WatchWallboardResponse {
	t.Helper()
	deadline := time.After(taskDeadline)
	var last *dispatchv1.GroupBoard
	for {
		select {
		case u := <-f.updates:
			if u.GetKind() == watchv1.Kind_KIND_HEARTBEAT {
				continue
			}
			i := slices.IndexFunc(u.GetWallboard().GetGroups(), func(g *dispatchv1.GroupBoard) bool { return g.GetGroup() == "dispatcher" })
			if i < 0 {
				continue
			}
			last = u.GetWallboard().GetGroups()[i]
			if ok(last) {
				return u
			}
		case err := <-f.errs:
			t.Fatalf("the wallboard stream ended waiting for %s: %v", what, err)
		case <-deadline:
			t.Fatalf("the wallboard never showed %s; last: %v", what, last)
		}
	}
}

// TestADayOfTheCallCenter (issue 17 item 4) plays a day of a call center
// through the frontend's calls only: three companies' upstream systems send
// their services on the NATS ingress (seed 003's property company, seed
// 001's appliance maker, seed 000's hospital); the property company's
// supervisor keeps a wallboard stream open; its agent searches a customer by
// the last digits of a phone, opens the timeline, claims the task, dials
// (RevealTaskContact), reads the questionnaire and script (GetTaskContext)
// and logs the call with one unsatisfied aspect and a major problem; the
// department owner watches the complaint, acknowledges and resolves it; the
// confirmation is made on site (seed 000 1.3: a major complaint is followed
// up by the manager, on site), so the manager claims it, books the visit with
// the customer (an appointment with its reminder) and logs it with the
// customer's signature; the complaint closes. The wallboard shows the queue
// move; the timeline shows the whole loop in time order; and the figures of
// the day equal the hand computation below.
func TestADayOfTheCallCenter(t *testing.T) {
	s := setup(t, nil)
	const unit = "estate-east"
	estate := newDesk(s, "estate")
	estate.loadPack("standard003", "seed-003-property", "dispatcher", "d-1", "d-2")
	_, err := s.dispatch.UpsertAgent(estate.admin, &dispatchv1.UpsertAgentRequest{Agent: &dispatchv1.Agent{Id: "l-1", TenantId: estate.tenant,
		Name: "l-1", Groups: []string{"dispatcher"}, Role: dispatchv1.Role_ROLE_LEADER}})
	require.NoError(t, err)
	_, err = s.dispatch.UpsertAgent(estate.admin, &dispatchv1.UpsertAgentRequest{Agent: &dispatchv1.Agent{Id: "mgr-1", TenantId: estate.tenant,
		Name: "mgr-1", Groups: []string{"dispatcher"}, Role: dispatchv1.Role_ROLE_DEPUTY}})
	require.NoError(t, err)
	shop := newDesk(s, "shop")
	shop.loadPack("appliance", "seed-001-appliance", "followup", "a-1")
	clinic := newDesk(s, "clinic")
	clinic.loadPackAs("hospital", map[string]string{"n-1": "nurse"})

	staff := func(id string, role auth.Role) context.Context {
		return s.as(person{tenant: estate.tenant, id: id, agent: true, units: []string{unit}, roles: []auth.Role{role}})
	}
	agent, leader, manager := staff("d-1", auth.Agent), staff("l-1", auth.Leader), staff("mgr-1", auth.Agent)
	owner := estate.owner("service_manager")

	// 08:00: the supervisor opens the wallboard of the dispatchers before anything arrived.
	board := watchBoard(t, leader, s.dispatch, &dispatchv1.WatchWallboardRequest{TenantId: estate.tenant, Group: "dispatcher"})
	first := board.until(t, "the empty queue", func(g *dispatchv1.GroupBoard) bool { return g.GetWaiting() == 0 })
	require.Equal(t, watchv1.Kind_KIND_SNAPSHOT, first.GetKind(), "a watch starts with the current state")
	refused, err := s.dispatch.WatchWallboard(agent, &dispatchv1.WatchWallboardRequest{TenantId: estate.tenant, Group: "dispatcher"})
	require.NoError(t, err)
	_, err = refused.Recv() // a stream's refusal arrives with its first message
	require.Equal(t, codes.PermissionDenied, status.Code(err), "an agent has no wallboard: %v", err)

	// The upstream systems report the services of the morning.
	t0 := time.Now().UTC().Truncate(time.Second)
	type served struct{ event, name, phone string }
	repairs := []served{{"r-1", "王芳", "+8613800138001"}, {"r-2", "李雷", "+8613800138002"}, {"r-3", "张伟", "+8613800138003"}}
	for i, r := range repairs {
		s.publish(fmt.Sprintf(`{"tenant_id":"estate","source_system":"erp-demo","source_event_id":%q,"service_type":"repair","completed_at":%q,"org_unit":%q,"customer":{"external_id":%q,"name":%q,"phone":%q}}`,
			r.event, t0.Add(-time.Duration(i+2)*time.Hour).Format(time.RFC3339), unit, "c-"+r.event, r.name, r.phone))
	}
	shop.serve("p-1", "purchase", t0.Add(-25*time.Hour)) // seed 001: called from +1 day
	s.publish(unitIngress(clinic.tenant, "discharge-1", "discharge", "p-discharge-1", "ward-3", t0.Add(-time.Hour)))

	// The three repairs reach the dispatchers' queue (seed 003: at once, within 48 hours).
	board.until(t, "three tasks waiting", func(g *dispatchv1.GroupBoard) bool { return g.GetWaiting() == 3 && g.GetInProgress() == 0 })

	// The other companies' tasks reach their own queues, not this one.
	for _, d := range []*desk{shop, clinic} {
		waitFor(t, taskDeadline, "the task of "+d.tenant, func() (int, bool, error) {
			resp, err := s.dispatch.ListTasks(d.director, &dispatchv1.ListTasksRequest{TenantId: d.tenant, PageSize: 10})
			return len(resp.GetTasks()), err == nil && len(resp.GetTasks()) > 0, err
		})
	}

	// 09:00: a customer calls back about the repair; the agent finds her by
	// the last four digits of her phone and reads her timeline.
	found, err := s.intake.SearchCustomers(agent, &intakev1.SearchCustomersRequest{Phone: "8001"})
	require.NoError(t, err)
	require.Len(t, found.GetCustomers(), 1)
	customer := found.GetCustomers()[0].GetCustomer()
	require.Equal(t, "c-r-1", customer.GetExternalId())
	require.Equal(t, "王*", customer.GetNameMasked())
	require.Equal(t, "*******8001", customer.GetPhoneMasked())
	require.Empty(t, customer.GetName(), "never in clear")
	require.Empty(t, customer.GetPhone(), "never in clear")
	_, err = s.intake.SearchCustomers(agent, &intakev1.SearchCustomersRequest{Phone: "01"})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "two digits match too many: %v", err)
	timeline := func(ctx context.Context) []*intakev1.TimelineEntry {
		var all []*intakev1.TimelineEntry
		req := &intakev1.GetCustomerTimelineRequest{CustomerId: customer.GetId(), PageSize: 4}
		for {
			page, err := s.intake.GetCustomerTimeline(ctx, req)
			require.NoError(t, err)
			all = append(all, page.GetEntries()...)
			if page.GetNextPageToken() == "" {
				return all
			}
			req.PageToken = page.GetNextPageToken()
		}
	}
	kinds := func(entries []*intakev1.TimelineEntry) []intakev1.TimelineEntryKind {
		out := make([]intakev1.TimelineEntryKind, len(entries))
		for i, e := range entries {
			out[i] = e.GetKind()
		}
		return out
	}
	morning := waitFor(t, taskDeadline, "the service and its visit on the timeline", func() ([]*intakev1.TimelineEntry, bool, error) {
		es := timeline(agent)
		return es, slices.Contains(kinds(es), intakev1.TimelineEntryKind_TIMELINE_ENTRY_KIND_VISIT_DUE), nil
	})
	require.Equal(t, intakev1.TimelineEntryKind_TIMELINE_ENTRY_KIND_SERVICE, morning[0].GetKind(), "the repair comes first")

	// The agent takes a break: no task is handed out until it is back.
	_, err = s.dispatch.SetAgentPresence(agent, &dispatchv1.SetAgentPresenceRequest{Presence: dispatchv1.Presence_PRESENCE_ON_BREAK, Reason: "meeting"})
	require.NoError(t, err)
	_, err = s.dispatch.ClaimNextTask(agent, &dispatchv1.ClaimNextTaskRequest{})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "on a break: %v", err)
	_, err = s.dispatch.SetAgentPresence(agent, &dispatchv1.SetAgentPresenceRequest{Presence: dispatchv1.Presence_PRESENCE_AVAILABLE})
	require.NoError(t, err)

	// It claims the tasks in deadline order: r-3 (completed first) is the one it works now.
	task := s.claimAs(agent, "d-1")
	require.Equal(t, "c-r-3", task.GetCustomer().GetExternalId(), "the oldest service's deadline comes first")
	board.until(t, "one task in progress", func(g *dispatchv1.GroupBoard) bool { return g.GetWaiting() == 2 && g.GetInProgress() == 1 })
	s.answered(agent, task) // the call is made: the task is done
	s.logAs(agent, &feedbackv1.LogVisitRequest{TenantId: estate.tenant, VisitId: task.GetVisitId(),
		Answers: []*typesv1.Answer{{Aspect: "overall", Rating: ratedA}, {Aspect: "cleaning", Rating: ratedA}}})
	task = s.claimAs(agent, "d-1")
	require.Equal(t, "c-r-2", task.GetCustomer().GetExternalId())
	s.answered(agent, task)
	s.logAs(agent, &feedbackv1.LogVisitRequest{TenantId: estate.tenant, VisitId: task.GetVisitId(),
		Answers: []*typesv1.Answer{{Aspect: "overall", Rating: ratedA}, {Aspect: "cleaning", Rating: ratedB}}})

	// The caller's own task: the screen in one call, then the number to dial.
	task = s.claimAs(agent, "d-1")
	require.Equal(t, customer.GetId(), task.GetCustomer().GetId())
	screen, err := s.dispatch.GetTaskContext(agent, &dispatchv1.GetTaskContextRequest{TaskId: task.GetId(), LeaseToken: task.GetLeaseToken()})
	require.NoError(t, err)
	require.Equal(t, "ok", screen.GetQuestionnaireStatus())
	require.Equal(t, "seed-003-property", screen.GetQuestionnaire().GetId(), "the questionnaire the tenant linked to the policy")
	require.NotEmpty(t, screen.GetScript().GetGreeting())
	require.Equal(t, "repair", screen.GetService().GetServiceType())
	dial, err := s.dispatch.RevealTaskContact(agent, &dispatchv1.RevealTaskContactRequest{TaskId: task.GetId(), LeaseToken: task.GetLeaseToken(), Purpose: "follow-up call"})
	require.NoError(t, err)
	require.Equal(t, "+8613800138001", dial.GetAddress(), "click to dial")
	s.answered(agent, task)
	rec := s.logAs(agent, &feedbackv1.LogVisitRequest{TenantId: estate.tenant, VisitId: task.GetVisitId(),
		Answers:  []*typesv1.Answer{{Aspect: "overall", Rating: ratedB}, {Aspect: "building_maintenance", Rating: ratedC, Comment: "天花板仍然漏水"}},
		Problems: []*typesv1.Problem{{Category: "building_maintenance", Description: "维修后天花板仍然漏水", Severity: typesv1.Severity_SEVERITY_MAJOR}}})
	require.Len(t, rec.GetComplaintIds(), 1, "the unsatisfied aspect's problem goes to its department")
	complaintID := rec.GetComplaintIds()[0]
	board.until(t, "three done, none waiting", func(g *dispatchv1.GroupBoard) bool {
		return g.GetWaiting() == 0 && g.GetInProgress() == 0 && g.GetDoneToday() == 3
	})

	// The department owner follows the complaint as a stream while it handles it.
	progress, err := s.feedback.WatchComplaint(owner, &feedbackv1.WatchComplaintRequest{Id: complaintID})
	require.NoError(t, err)
	snap, err := progress.Recv()
	require.NoError(t, err)
	require.Equal(t, "open", snap.GetComplaint().GetComplaint().GetStatus())
	_, err = s.feedback.AcknowledgeComplaint(owner, &feedbackv1.AcknowledgeComplaintRequest{ComplaintId: complaintID})
	require.NoError(t, err)
	_, err = s.feedback.ResolveComplaint(owner, &feedbackv1.ResolveComplaintRequest{ComplaintId: complaintID, RootCause: "水管破裂", Action: "更换水管"})
	require.NoError(t, err)

	// The confirmation is the manager's, on site: it agrees the time with the customer.
	confirm := s.claimAs(manager, "mgr-1")
	require.Equal(t, typesv1.Channel_CHANNEL_ONSITE, confirm.GetChannel(), "seed 000: a major complaint is confirmed on site")
	require.Equal(t, customer.GetId(), confirm.GetCustomer().GetId())
	tomorrow := t0.Add(24 * time.Hour).Truncate(time.Hour)
	booked, err := s.dispatch.BookAppointment(manager, &dispatchv1.BookAppointmentRequest{TaskId: confirm.GetId(), LeaseToken: confirm.GetLeaseToken(),
		StartsAt: timestamppb.New(tomorrow), EndsAt: timestamppb.New(tomorrow.Add(time.Hour))})
	require.NoError(t, err)
	require.Equal(t, "booked", booked.GetAppointment().GetStatus())
	require.Equal(t, "scheduled", booked.GetAppointment().GetReminderStatus(), "the customer is reminded before the visit")
	require.True(t, booked.GetAppointment().GetRemindAt().AsTime().Before(tomorrow))
	_, err = s.dispatch.BookAppointment(manager, &dispatchv1.BookAppointmentRequest{TaskId: confirm.GetId(), LeaseToken: confirm.GetLeaseToken(),
		StartsAt: timestamppb.New(tomorrow.Add(time.Hour)), EndsAt: timestamppb.New(tomorrow)})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "an end before the start: %v", err)

	// The visit (made the next morning), with the customer's signature: satisfied, the complaint closes.
	s.logAs(manager, &feedbackv1.LogVisitRequest{TenantId: estate.tenant, VisitId: confirm.GetVisitId(), SignatureRef: "sig-r-1",
		Answers: []*typesv1.Answer{{Aspect: "overall", Rating: ratedA}, {Aspect: "building_maintenance", Rating: ratedA}}})
	for {
		u, err := progress.Recv()
		require.NoError(t, err, "the complaint's stream until it closes")
		if u.GetComplaint().GetComplaint().GetStatus() == "closed" {
			break
		}
	}

	// The customer's timeline shows the whole loop, in time order, through pages of four.
	want := []intakev1.TimelineEntryKind{
		intakev1.TimelineEntryKind_TIMELINE_ENTRY_KIND_SERVICE,
		intakev1.TimelineEntryKind_TIMELINE_ENTRY_KIND_VISIT_DUE,
		intakev1.TimelineEntryKind_TIMELINE_ENTRY_KIND_VISIT_ASSIGNED,
		intakev1.TimelineEntryKind_TIMELINE_ENTRY_KIND_ATTEMPT,
		intakev1.TimelineEntryKind_TIMELINE_ENTRY_KIND_VISIT_LOGGED,
		intakev1.TimelineEntryKind_TIMELINE_ENTRY_KIND_COMPLAINT_ESCALATED,
		intakev1.TimelineEntryKind_TIMELINE_ENTRY_KIND_COMPLAINT_ACKNOWLEDGED,
		intakev1.TimelineEntryKind_TIMELINE_ENTRY_KIND_COMPLAINT_RESOLVED,
		intakev1.TimelineEntryKind_TIMELINE_ENTRY_KIND_APPOINTMENT,
		intakev1.TimelineEntryKind_TIMELINE_ENTRY_KIND_COMPLAINT_CLOSED,
	}
	day := waitFor(t, taskDeadline, "the whole loop on the timeline", func() ([]*intakev1.TimelineEntry, bool, error) {
		es := timeline(agent)
		return es, slices.Contains(kinds(es), intakev1.TimelineEntryKind_TIMELINE_ENTRY_KIND_COMPLAINT_CLOSED), nil
	})
	got := kinds(day)
	at := 0
	for _, k := range want {
		i := slices.Index(got[at:], k)
		require.GreaterOrEqual(t, i, 0, "%v after %v in %v", k, want[:slices.Index(want, k)], got)
		at += i + 1
	}
	require.True(t, slices.IsSortedFunc(day, func(a, b *intakev1.TimelineEntry) int { return a.GetAt().AsTime().Compare(b.GetAt().AsTime()) }),
		"merged in time order")

	// The figures of the day, by hand (seed 003; 发出票数 the 4 visits due,
	// 回收票数 the 4 records):
	//   - coverage: the 3 repairs each followed up, and the complaint's confirmation
	//     round, which names no service and so stands for one of its own
	//     (docs/figures.md) → 4/4; visits completed 4/4; questionnaires returned / sent 4/4;
	//   - timeliness: all 4 made well inside the policy's deadline → 4/4, none late;
	//     within 48 h of the service 4/4;
	//   - 综合评议满意率 overall: A r-3, r-2, confirmation; B r-1 → 4/4, rated 4/4;
	//   - building_maintenance: C r-1, A confirmation, blank r-2, r-3 → 1/4, rated 1/2;
	//   - cleaning: A r-3, B r-2, blank r-1 and the confirmation → 2/4, rated 2/2.
	estate.expectFigures(map[string]string{
		"timeliness": "4/4", "late": "0/4", "within_48h": "4/4",
		"coverage": "4/4", "visit_completion": "4/4", "response_rate": "4/4",
		"overall":                        "A3 B1 C0: rate 4/4, rated 4/4",
		"overall (aspects)":              "rate 4/4 target 0.85, rated 4/4",
		"building_maintenance":           "A1 B0 C1: rate 1/4, rated 1/2",
		"building_maintenance (aspects)": "rate 1/4 target 0.80, rated 1/2",
		"cleaning":                       "A1 B1 C0: rate 2/4, rated 2/2",
		"cleaning (aspects)":             "rate 2/4 target 0.80, rated 2/2",
	}, "overall", "building_maintenance", "cleaning")

	s.checkNoPersonalData("13800138001", "王芳", "李雷")
	s.checkMetrics()
}
