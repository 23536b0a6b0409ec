package grpcapi_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/grpcapi"
	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/questionnaires"
	"github.com/huifang/huifang/services/dispatch/internal/sender"
	"github.com/huifang/huifang/services/dispatch/internal/storetest"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// fakeFeedback is feedback's GetPolicyQuestionnaire: policy p-repair
// uses q-1; it answers UNAVAILABLE while down.
type fakeFeedback struct {
	feedbackv1.UnimplementedFeedbackServiceServer
	down  atomic.Bool
	calls atomic.Int32
}

func (f *fakeFeedback) GetPolicyQuestionnaire(_ context.Context, req *feedbackv1.GetPolicyQuestionnaireRequest) (*feedbackv1.GetPolicyQuestionnaireResponse, error) {
	f.calls.Add(1)
	if f.down.Load() {
		return nil, status.Error(codes.Unavailable, "feedback is restarting")
	}
	if req.GetPolicyId() != "p-repair" {
		return nil, status.Error(codes.NotFound, "the policy names no questionnaire")
	}
	return &feedbackv1.GetPolicyQuestionnaireResponse{Questionnaire: &feedbackv1.Questionnaire{Id: "q-1", TenantId: req.GetTenantId(), Version: 2,
		Name: "维修回访", Questions: []*feedbackv1.Question{{Id: "overall", Text: "您对本次维修满意吗？"}}}}, nil
}

// guarded is dispatch's API behind its guard (the permission table of
// pkg/access), with the relay publishing to an embedded NATS, a clock the
// test moves and feedback's fake.
type guarded struct {
	bundle
	is       *issuer.Issuer
	clock    *storetest.Clock
	app      *app.App
	feedback *fakeFeedback
}

func setupGuarded(t *testing.T) guarded {
	t.Helper()
	pool := storetest.Pool(t)
	js := servicetest.JetStream(t)
	log := servicetest.Logger()
	relay := outbox.NewRelay(pool, js, log, storetest.Schema)
	ctx, cancel := context.WithCancel(context.Background())
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-relayDone
	})

	fb := &fakeFeedback{}
	fsrv := grpcserver.New(log, "", "")
	feedbackv1.RegisterFeedbackServiceServer(fsrv.GRPC, fb)
	fconn := servicetest.Serve(t, fsrv)

	guard, is := servicetest.Guard(t, "dispatch")
	srv := grpcserver.New(log, "", "", grpc.ChainUnaryInterceptor(guard.Unary))
	clock := storetest.NewClock(t0)
	local := &sender.Local{Pool: pool, Log: log, Now: clock.Now}
	a := &app.App{DB: pool, Relay: relay, Now: clock.Now, Log: log, Lease: lease, Waker: &app.Waker{}, Poll: 20 * time.Millisecond,
		Retry: task.RetryPolicy{typesv1.Channel_CHANNEL_PHONE: {typesv1.Disposition_DISPOSITION_NO_ANSWER: {After: 2 * time.Hour, Max: 3}}},
		Send: app.Sending{Sender: sender.ByChannel{SMS: local, Email: local}, Contacts: storetest.NewContacts(), Lease: 2 * time.Minute,
			Retry: message.Retry{Backoff: time.Minute, MaxTries: 3}, Batch: 10},
		Questionnaires: &questionnaires.Feedback{Client: feedbackv1.NewFeedbackServiceClient(fconn)},
	}
	dispatchv1.RegisterDispatchServiceServer(srv.GRPC, &grpcapi.Server{App: a})
	conn := servicetest.Serve(t, srv)
	g := guarded{bundle: bundle{pool: pool, js: js, client: dispatchv1.NewDispatchServiceClient(conn)}, is: is, clock: clock, app: a, feedback: fb}

	// The center: group g-1 led by lead (agents a-1, a-2), group g-2 led by lead2.
	for _, u := range []task.OrgUnit{{ID: "center", Name: "回访中心", Kind: "center", LeaderID: "dir"},
		{ID: "g-1", Name: "一组", ParentID: "center", Kind: "group", LeaderID: "lead"},
		{ID: "g-2", Name: "二组", ParentID: "center", Kind: "group", LeaderID: "lead2"}} {
		u.Tenant = "default"
		_, err := a.UpsertOrgUnit(context.Background(), u)
		require.NoError(t, err)
	}
	for _, ag := range []task.Agent{{ID: "a-1", Name: "李娜", Groups: []string{"g-1"}}, {ID: "a-2", Name: "张伟", Groups: []string{"g-1"}},
		{ID: "lead", Name: "王组长", Groups: []string{"g-1"}, Role: task.RoleLeader}, {ID: "lead2", Name: "赵组长", Groups: []string{"g-2"}, Role: task.RoleLeader}} {
		ag.Tenant = "default"
		_, err := a.UpsertAgent(context.Background(), ag)
		require.NoError(t, err)
	}
	return g
}

// as is a call context of agent id of the default tenant with roles.
func (g guarded) as(t *testing.T, id string, roles ...auth.Role) context.Context {
	t.Helper()
	rs := make([]string, len(roles))
	for i, r := range roles {
		rs[i] = string(r)
	}
	tok, err := g.is.Mint(issuer.Token{Subject: "u-" + id, Claims: auth.Claims{Tenant: "default", Roles: rs, AgentID: id}})
	require.NoError(t, err)
	return metadata.NewOutgoingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok))
}

// due makes the task of a visit as its VisitDue would.
func (g guarded) due(t *testing.T, visit string, ch typesv1.Channel) {
	t.Helper()
	created, err := g.app.CreateTask(context.Background(), task.Due{Tenant: "default", VisitID: visit, Channel: ch, Group: "g-1",
		Severity: typesv1.Severity_SEVERITY_GENERAL, DueAt: t0, Deadline: t0.Add(72 * time.Hour), OrgUnit: "store-1", ServiceType: "repair",
		PolicyID: "p-repair", ProductCategory: "air_conditioner", ServiceID: "s-" + visit, CompletedAt: t0.Add(-26 * time.Hour),
		ComplaintID: "cmp-7", Late: true,
		Customer: task.Customer{ID: "c-1", NameMasked: "王*", PhoneMasked: "*******8000", HasPhone: true,
			Preferences: task.Preferences{TimeZone: "Asia/Shanghai", Windows: []contact.Window{{Start: 9 * 60, End: 18 * 60}}}}})
	require.NoError(t, err)
	require.True(t, created)
}

// shanghai is the customers' zone in these tests: t0 (09:00 UTC) is 17:00 there.
var shanghai = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		panic(err)
	}
	return loc
}()

func code(err error) codes.Code { return status.Code(err) }

// TestAttemptsAndTaskContext: the attempts of a task (no notes), paged and
// scoped; the task's context in one call for its holder and the leader of
// its group (seed 004's script: confirm identity, introduce, purpose,
// thanks), with the questionnaire from feedback, and without it while
// feedback is away.
func TestAttemptsAndTaskContext(t *testing.T) {
	g := setupGuarded(t)
	a1, a2 := g.as(t, "a-1", auth.Agent), g.as(t, "a-2", auth.Agent)
	lead, lead2 := g.as(t, "lead", auth.Leader), g.as(t, "lead2", auth.Leader)
	dir, admin := g.as(t, "dir", auth.Director), g.as(t, "admin", auth.TenantAdmin)
	g.due(t, "v-1", typesv1.Channel_CHANNEL_PHONE)

	claim := func() *dispatchv1.Task {
		got, err := g.client.ClaimNextTask(a1, &dispatchv1.ClaimNextTaskRequest{})
		require.NoError(t, err)
		require.NotNil(t, got.GetTask())
		return got.GetTask()
	}
	for range 2 {
		x := claim()
		res, err := g.client.RecordAttempt(a1, &dispatchv1.RecordAttemptRequest{TaskId: x.GetId(), LeaseToken: x.GetLeaseToken(),
			Disposition: typesv1.Disposition_DISPOSITION_NO_ANSWER, Note: "关机，138 0013 8000"})
		require.NoError(t, err)
		g.clock.Set(res.GetNextAttemptAt().AsTime())
	}
	x := claim()

	// ListAttempts: paged, oldest first, no note. 2 hours after 17:00 is
	// past the customer's window (09:00-18:00): the retry came the next
	// morning.
	first, err := g.client.ListAttempts(a1, &dispatchv1.ListAttemptsRequest{TaskId: x.GetId(), PageSize: 1})
	require.NoError(t, err)
	require.Len(t, first.GetAttempts(), 1)
	require.NotEmpty(t, first.GetNextPageToken())
	want := &dispatchv1.TaskAttempt{TaskId: x.GetId(), VisitId: "v-1", Attempt: 1, Disposition: typesv1.Disposition_DISPOSITION_NO_ANSWER,
		Channel: typesv1.Channel_CHANNEL_PHONE, AgentId: "a-1", At: timestamppb.New(t0), NextAttemptAt: timestamppb.New(time.Date(2025, 3, 11, 9, 0, 0, 0, shanghai))}
	require.True(t, proto.Equal(want, first.GetAttempts()[0]), "%v", first.GetAttempts()[0])
	second, err := g.client.ListAttempts(a1, &dispatchv1.ListAttemptsRequest{TaskId: x.GetId(), PageSize: 1, PageToken: first.GetNextPageToken()})
	require.NoError(t, err)
	require.Len(t, second.GetAttempts(), 1)
	require.Equal(t, int32(2), second.GetAttempts()[0].GetAttempt())
	require.Empty(t, second.GetNextPageToken())
	for _, ctx := range []context.Context{lead, dir} {
		all, err := g.client.ListAttempts(ctx, &dispatchv1.ListAttemptsRequest{TaskId: x.GetId()})
		require.NoError(t, err)
		require.Len(t, all.GetAttempts(), 2)
	}
	for _, ctx := range []context.Context{a2, lead2} {
		_, err = g.client.ListAttempts(ctx, &dispatchv1.ListAttemptsRequest{TaskId: x.GetId()})
		require.Equal(t, codes.PermissionDenied, code(err), "%v", err)
	}
	_, err = g.client.ListAttempts(admin, &dispatchv1.ListAttemptsRequest{TaskId: x.GetId()})
	require.Equal(t, codes.PermissionDenied, code(err), "not an admin's")
	_, err = g.client.ListAttempts(a1, &dispatchv1.ListAttemptsRequest{})
	requireViolations(t, err, "task_id")
	_, err = g.client.ListAttempts(dir, &dispatchv1.ListAttemptsRequest{TaskId: "nope"})
	require.Equal(t, codes.NotFound, code(err))

	// GetTaskContext for the holder.
	c, err := g.client.GetTaskContext(a1, &dispatchv1.GetTaskContextRequest{TaskId: x.GetId(), LeaseToken: x.GetLeaseToken()})
	require.NoError(t, err)
	require.Equal(t, "王*", c.GetTask().GetCustomer().GetNameMasked())
	require.Empty(t, c.GetTask().GetCustomer().GetPhone(), "masked as ClaimNextTask shows it")
	require.True(t, proto.Equal(&dispatchv1.ServiceDetails{ServiceId: "s-v-1", ServiceType: "repair", CompletedAt: timestamppb.New(t0.Add(-26 * time.Hour)),
		Product: "air_conditioner", OrgUnit: "store-1", Severity: typesv1.Severity_SEVERITY_GENERAL, ComplaintId: "cmp-7", Late: true,
		PolicyId: "p-repair"}, c.GetService()), "%v", c.GetService())
	require.Len(t, c.GetAttempts(), 2)
	require.Equal(t, "ok", c.GetQuestionnaireStatus())
	require.Equal(t, "q-1", c.GetQuestionnaire().GetId())
	require.Equal(t, "default", c.GetScript().GetSource())
	require.Contains(t, c.GetScript().GetGreeting(), "王*", "the masked name")
	require.Contains(t, c.GetScript().GetGreeting(), "李娜", "the agent introduces itself")
	require.Contains(t, c.GetScript().GetBody(), "方便", "asks whether it is convenient (seed 004)")
	require.Contains(t, c.GetScript().GetClosing(), "感谢")
	require.Nil(t, c.GetAppointment())

	// Refusals: a stale token, another agent, a leader of another group.
	_, err = g.client.GetTaskContext(a1, &dispatchv1.GetTaskContextRequest{TaskId: x.GetId(), LeaseToken: x.GetLeaseToken() + 1})
	require.Equal(t, codes.FailedPrecondition, code(err), "%v", err)
	_, err = g.client.GetTaskContext(a2, &dispatchv1.GetTaskContextRequest{TaskId: x.GetId()})
	require.Equal(t, codes.PermissionDenied, code(err), "%v", err)
	_, err = g.client.GetTaskContext(lead2, &dispatchv1.GetTaskContextRequest{TaskId: x.GetId()})
	require.Equal(t, codes.PermissionDenied, code(err), "%v", err)
	_, err = g.client.GetTaskContext(a1, &dispatchv1.GetTaskContextRequest{LeaseToken: -1})
	requireViolations(t, err, "task_id", "lease_token")

	// The tenant's own script for repairs, read by the group's leader.
	_, err = g.client.UpsertTemplate(admin, fromJSON(t, `{"template":{"kind":"script","service_type":"repair",
		"greeting":"您好，请问是{name}吗？我是{agent}。","body":"关于您{service_type}的回访，现在方便吗？","footer":"感谢您的支持！"}}`,
		&dispatchv1.UpsertTemplateRequest{}))
	require.NoError(t, err)
	_, err = g.client.UpsertTemplate(admin, fromJSON(t, `{"template":{"kind":"script","body":"x"}}`, &dispatchv1.UpsertTemplateRequest{}))
	requireViolations(t, err, "template.greeting", "template.footer")

	// Feedback away: the rest stands, the questionnaire is unavailable.
	g.feedback.down.Store(true)
	c, err = g.client.GetTaskContext(lead, &dispatchv1.GetTaskContextRequest{TaskId: x.GetId()})
	require.NoError(t, err)
	require.Equal(t, "unavailable", c.GetQuestionnaireStatus())
	require.Nil(t, c.GetQuestionnaire())
	require.Equal(t, "tenant", c.GetScript().GetSource())
	require.Equal(t, "您好，请问是王*吗？我是李娜。", c.GetScript().GetGreeting())
	require.Len(t, c.GetAttempts(), 2)
	require.Equal(t, "repair", c.GetService().GetServiceType())
}

// events returns the payloads published on subject so far (at least n,
// waiting for them).
func events[T proto.Message](t *testing.T, js jetstream.JetStream, subject string, n int, mk func() T) []T {
	t.Helper()
	ctx := context.Background()
	cons, err := js.OrderedConsumer(ctx, stream.EventsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	require.NoError(t, err)
	var out []T
	deadline := time.Now().Add(15 * time.Second)
	for len(out) < n && time.Now().Before(deadline) {
		batch, err := cons.Fetch(n-len(out), jetstream.FetchMaxWait(time.Second))
		require.NoError(t, err)
		for msg := range batch.Messages() {
			ev := mk()
			require.NoError(t, proto.Unmarshal(msg.Data(), ev))
			out = append(out, ev)
		}
	}
	require.Len(t, out, n, "events on %s", subject)
	return out
}

// TestAppointments: seed 000, on-site visits are agreed in advance: the
// holder books, bad windows and other channels are refused naming the
// field, one agent cannot be at two customers at once, a leader moves, the
// agent cancels; each change is one AppointmentChanged on NATS; listings are
// scoped and the address note is shown only to the agent who goes.
func TestAppointments(t *testing.T) {
	g := setupGuarded(t)
	a1, a2 := g.as(t, "a-1", auth.Agent), g.as(t, "a-2", auth.Agent)
	lead, lead2, dir := g.as(t, "lead", auth.Leader), g.as(t, "lead2", auth.Leader), g.as(t, "dir", auth.Director)
	g.due(t, "v-1", typesv1.Channel_CHANNEL_ONSITE)
	g.due(t, "v-2", typesv1.Channel_CHANNEL_ONSITE)
	g.due(t, "v-3", typesv1.Channel_CHANNEL_PHONE)
	var held []*dispatchv1.Task
	for range 3 {
		got, err := g.client.ClaimNextTask(a1, &dispatchv1.ClaimNextTaskRequest{})
		require.NoError(t, err)
		held = append(held, got.GetTask())
	}
	var onsite []*dispatchv1.Task
	var phone *dispatchv1.Task
	for _, x := range held {
		if x.GetChannel() == typesv1.Channel_CHANNEL_ONSITE {
			onsite = append(onsite, x)
		} else {
			phone = x
		}
	}
	require.Len(t, onsite, 2)
	x, y := onsite[0], onsite[1]

	start := time.Date(2025, 3, 12, 10, 0, 0, 0, shanghai)
	book := func(ctx context.Context, x *dispatchv1.Task, from, to time.Time, note string) (*dispatchv1.Appointment, error) {
		resp, err := g.client.BookAppointment(ctx, &dispatchv1.BookAppointmentRequest{TaskId: x.GetId(), LeaseToken: x.GetLeaseToken(),
			StartsAt: timestamppb.New(from), EndsAt: timestamppb.New(to), AddressNote: note})
		return resp.GetAppointment(), err
	}
	_, err := book(a1, x, start, start.Add(-time.Hour), "")
	requireViolations(t, err, "ends_at")
	_, err = book(a1, x, t0.Add(-time.Hour), t0, "")
	requireViolations(t, err, "starts_at")
	_, err = g.client.BookAppointment(a1, &dispatchv1.BookAppointmentRequest{TaskId: x.GetId()})
	requireViolations(t, err, "starts_at", "ends_at")
	_, err = book(a1, x, start, start.Add(time.Hour), strings.Repeat("楼", 501))
	requireViolations(t, err, "address_note")
	_, err = book(a1, phone, start, start.Add(time.Hour), "")
	requireViolations(t, err, "task_id")
	_, err = book(a2, x, start, start.Add(time.Hour), "")
	require.Equal(t, codes.FailedPrecondition, code(err), "a-2 does not hold it: %v", err)

	ap, err := book(a1, x, start, start.Add(time.Hour), "3号楼2单元")
	require.NoError(t, err)
	require.Equal(t, "booked", ap.GetStatus())
	require.Equal(t, "3号楼2单元", ap.GetAddressNote(), "in full for the agent who goes")
	require.Equal(t, "scheduled", ap.GetReminderStatus())
	require.True(t, ap.GetRemindAt().AsTime().Equal(start.Add(-24*time.Hour)))
	_, err = book(a1, x, start.Add(2*time.Hour), start.Add(3*time.Hour), "")
	require.Equal(t, codes.FailedPrecondition, code(err), "one booked appointment per task: %v", err)
	_, err = book(a1, y, start.Add(30*time.Minute), start.Add(90*time.Minute), "")
	require.Equal(t, codes.FailedPrecondition, code(err), "a-1 cannot be at two customers at once: %v", err)
	bp, err := book(a1, y, start.Add(time.Hour), start.Add(2*time.Hour), "")
	require.NoError(t, err, "back to back is fine")

	// Listings.
	mine, err := g.client.ListAppointments(a1, &dispatchv1.ListAppointmentsRequest{PageSize: 1})
	require.NoError(t, err)
	require.Len(t, mine.GetAppointments(), 1)
	require.Equal(t, ap.GetId(), mine.GetAppointments()[0].GetId())
	next, err := g.client.ListAppointments(a1, &dispatchv1.ListAppointmentsRequest{PageSize: 1, PageToken: mine.GetNextPageToken()})
	require.NoError(t, err)
	require.Equal(t, []string{bp.GetId()}, appointmentIDs(next.GetAppointments()))
	_, err = g.client.ListAppointments(a2, &dispatchv1.ListAppointmentsRequest{AgentId: "a-1"})
	require.Equal(t, codes.PermissionDenied, code(err))
	none, err := g.client.ListAppointments(a2, &dispatchv1.ListAppointmentsRequest{})
	require.NoError(t, err)
	require.Empty(t, none.GetAppointments(), "a-2 has none of its own")
	led, err := g.client.ListAppointments(lead, &dispatchv1.ListAppointmentsRequest{Day: "2025-03-12", TimeZone: "Asia/Shanghai"})
	require.NoError(t, err)
	require.Equal(t, []string{ap.GetId(), bp.GetId()}, appointmentIDs(led.GetAppointments()))
	require.Equal(t, "3… (6 characters)", led.GetAppointments()[0].GetAddressNote(), "masked for the leader")
	other, err := g.client.ListAppointments(lead2, &dispatchv1.ListAppointmentsRequest{})
	require.NoError(t, err)
	require.Empty(t, other.GetAppointments(), "not lead2's group")
	nextDay, err := g.client.ListAppointments(dir, &dispatchv1.ListAppointmentsRequest{Day: "2025-03-13", TimeZone: "Asia/Shanghai"})
	require.NoError(t, err)
	require.Empty(t, nextDay.GetAppointments())
	_, err = g.client.ListAppointments(dir, &dispatchv1.ListAppointmentsRequest{Day: "12/03/2025", TimeZone: "Mars/Base"})
	requireViolations(t, err, "time_zone", "day")

	// A leader of the group moves it; a-2 may not; a bad reason is refused.
	moved := start.Add(24 * time.Hour)
	_, err = g.client.MoveAppointment(a2, &dispatchv1.MoveAppointmentRequest{AppointmentId: ap.GetId(), Reason: "customer_request",
		StartsAt: timestamppb.New(moved), EndsAt: timestamppb.New(moved.Add(time.Hour))})
	require.Equal(t, codes.PermissionDenied, code(err))
	_, err = g.client.MoveAppointment(lead, &dispatchv1.MoveAppointmentRequest{AppointmentId: ap.GetId(), Reason: "他家里有事",
		StartsAt: timestamppb.New(moved), EndsAt: timestamppb.New(moved.Add(time.Hour))})
	requireViolations(t, err, "reason")
	mv, err := g.client.MoveAppointment(lead, &dispatchv1.MoveAppointmentRequest{AppointmentId: ap.GetId(), Reason: "customer_request",
		StartsAt: timestamppb.New(moved), EndsAt: timestamppb.New(moved.Add(time.Hour))})
	require.NoError(t, err)
	require.Equal(t, int32(2), mv.GetAppointment().GetVersion())
	require.True(t, mv.GetAppointment().GetRemindAt().AsTime().Equal(moved.Add(-24*time.Hour)), "the reminder moves with it")
	_, err = g.client.MoveAppointment(lead, &dispatchv1.MoveAppointmentRequest{AppointmentId: "nope", Reason: "other",
		StartsAt: timestamppb.New(moved), EndsAt: timestamppb.New(moved.Add(time.Hour))})
	require.Equal(t, codes.NotFound, code(err))

	// The task's context shows its appointment.
	c, err := g.client.GetTaskContext(a1, &dispatchv1.GetTaskContextRequest{TaskId: x.GetId(), LeaseToken: x.GetLeaseToken()})
	require.NoError(t, err)
	require.Equal(t, ap.GetId(), c.GetAppointment().GetId())

	// The agent cancels.
	_, err = g.client.CancelAppointment(a1, &dispatchv1.CancelAppointmentRequest{AppointmentId: ap.GetId()})
	requireViolations(t, err, "reason")
	cancelled, err := g.client.CancelAppointment(a1, &dispatchv1.CancelAppointmentRequest{AppointmentId: ap.GetId(), Reason: "customer_request"})
	require.NoError(t, err)
	require.Equal(t, "cancelled", cancelled.GetAppointment().GetStatus())
	require.Equal(t, "cancelled", cancelled.GetAppointment().GetReminderStatus())
	_, err = g.client.CancelAppointment(a1, &dispatchv1.CancelAppointmentRequest{AppointmentId: ap.GetId(), Reason: "customer_request"})
	require.Equal(t, codes.FailedPrecondition, code(err))
	withCancelled, err := g.client.ListAppointments(a1, &dispatchv1.ListAppointmentsRequest{IncludeCancelled: true})
	require.NoError(t, err)
	require.Len(t, withCancelled.GetAppointments(), 2)

	evs := events(t, g.js, stream.SubjectAppointmentChanged, 4, func() *eventsv1.AppointmentChanged { return &eventsv1.AppointmentChanged{} })
	var changes []eventsv1.AppointmentChange
	for _, ev := range evs {
		changes = append(changes, ev.GetChange())
		require.Equal(t, "c-1", ev.GetCustomerId())
		require.Equal(t, "store-1", ev.GetOrgUnit())
	}
	require.Equal(t, []eventsv1.AppointmentChange{eventsv1.AppointmentChange_APPOINTMENT_CHANGE_BOOKED, eventsv1.AppointmentChange_APPOINTMENT_CHANGE_BOOKED,
		eventsv1.AppointmentChange_APPOINTMENT_CHANGE_MOVED, eventsv1.AppointmentChange_APPOINTMENT_CHANGE_CANCELLED}, changes)
	require.Equal(t, "lead", evs[2].GetAgentId(), "who moved it")
	require.Equal(t, "customer_request", evs[3].GetReason())

	// The remaining appointment's reminder goes out through the sender
	// loop the day before and reaches NATS as MessageSent.
	g.clock.Set(bp.GetRemindAt().AsTime())
	n, err := g.app.SendDue(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	sent := events(t, g.js, stream.SubjectMessageSent, 1, func() *eventsv1.MessageSent { return &eventsv1.MessageSent{} })
	require.Equal(t, bp.GetId(), sent[0].GetAppointmentId())
	require.Equal(t, "sent", sent[0].GetStatus())
}

func appointmentIDs(as []*dispatchv1.Appointment) []string {
	out := []string{}
	for _, a := range as {
		out = append(out, a.GetId())
	}
	return out
}
