package grpcapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/stream"
)

func ledgerAt(s string) *timestamppb.Timestamp {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return timestamppb.New(t)
}

// ledgerPublish publishes ev on subject as the outbox relay does (the
// event id as Nats-Msg-Id), or under msgID when set (a resend).
func ledgerPublish(t *testing.T, js jetstream.JetStream, subject, msgID string, ev proto.Message) {
	t.Helper()
	data, err := proto.Marshal(ev)
	require.NoError(t, err)
	_, err = js.Publish(context.Background(), subject, data, jetstream.WithMsgID(msgID))
	require.NoError(t, err)
}

// ledgerWait waits until the ledger holds n entries.
func ledgerWait(t *testing.T, d desk, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return d.count(t, `SELECT count(*) FROM ledger_entries`) >= n }, 20*time.Second, 20*time.Millisecond,
		"the ledger holds %d entries, want %d", d.count(t, `SELECT count(*) FROM ledger_entries`), n)
	require.Equal(t, n, d.count(t, `SELECT count(*) FROM ledger_entries`))
}

func timelineAll(t *testing.T, d desk, ctx context.Context, req *intakev1.GetCustomerTimelineRequest) []*intakev1.TimelineEntry {
	t.Helper()
	var out []*intakev1.TimelineEntry
	for pages := 0; ; pages++ {
		require.Less(t, pages, 50)
		resp, err := d.client.GetCustomerTimeline(ctx, req)
		require.NoError(t, err)
		out = append(out, resp.GetEntries()...)
		if resp.GetNextPageToken() == "" {
			return out
		}
		require.Len(t, resp.GetEntries(), int(req.GetPageSize()), "only the last page is short")
		req.PageToken = resp.GetNextPageToken()
	}
}

func timelineKinds(es []*intakev1.TimelineEntry) []intakev1.TimelineEntryKind {
	var out []intakev1.TimelineEntryKind
	for _, e := range es {
		out = append(out, e.GetKind())
	}
	return out
}

// The contact ledger through the public interfaces: a service reported to
// intake and the other services' events published on NATS, some before the
// events that say whose their visit or complaint is, and one twice; the
// timeline over gRPC shows them in time order, paged, filtered by kind and
// time, scoped to the caller's org units, without free text or contacts;
// an erasure adds its entry and leaves nothing personal.
func TestCustomerTimelineFromEvents(t *testing.T) {
	d := newDesk(t, auth.RateLimit{Rate: 1000, Burst: 1000})
	wang, li, _ := searchFixture(t, d) // three ServiceCompleted, relayed and consumed back
	ledgerWait(t, d, 3)
	pub := func(subject string, ev proto.Message) {
		ledgerPublish(t, d.js, subject, proto.Clone(ev).ProtoReflect().Get(ev.ProtoReflect().Descriptor().Fields().ByName("event_id")).String(), ev)
	}
	// Out of order: the assignment and the acknowledgement name no customer
	// and come before the events that link their visit and complaint.
	pub(stream.SubjectVisitAssigned, &eventsv1.VisitAssigned{EventId: "ev-03", TenantId: "default", VisitId: "v-1", AgentId: "a-1",
		AssignedAt: ledgerAt("2026-11-23T09:05:00Z")})
	pub(stream.SubjectComplaintAcknowledged, &eventsv1.ComplaintAcknowledged{EventId: "ev-10", TenantId: "default", ComplaintId: "cp-1", By: "o-1",
		At: ledgerAt("2026-11-25T12:00:00Z")})
	pub(stream.SubjectVisitPlanned, &eventsv1.VisitPlanned{EventId: "ev-01", TenantId: "default", VisitId: "v-1", CustomerId: wang,
		ServiceType: "maintenance", Channel: typesv1.Channel_CHANNEL_PHONE, DueAt: ledgerAt("2026-11-23T09:00:00Z")})
	pub(stream.SubjectVisitDue, &eventsv1.VisitDue{EventId: "ev-02", TenantId: "default", VisitId: "v-1", Customer: &typesv1.Customer{Id: wang,
		NameMasked: "王*"}, Channel: typesv1.Channel_CHANNEL_PHONE, DueAt: ledgerAt("2026-11-23T09:00:00Z"), ServiceType: "maintenance"})
	pub(stream.SubjectVisitAttempted, &eventsv1.VisitAttempted{EventId: "ev-04", TenantId: "default", VisitId: "v-1", TaskId: "t-1", AgentId: "a-1",
		CustomerId: wang, Channel: typesv1.Channel_CHANNEL_PHONE, Disposition: typesv1.Disposition_DISPOSITION_NO_ANSWER, Attempt: 1,
		AttemptedAt: ledgerAt("2026-11-23T09:10:00Z")})
	sent := &eventsv1.MessageSent{EventId: "ev-05", TenantId: "default", MessageId: "m-1", CustomerId: wang, VisitId: "v-1", TaskId: "t-1",
		Channel: typesv1.Channel_CHANNEL_SMS, Status: "sent", At: ledgerAt("2026-11-23T09:20:00Z")}
	pub(stream.SubjectMessageSent, sent)
	ledgerPublish(t, d.js, stream.SubjectMessageSent, "a resend under another message id", sent)
	pub(stream.SubjectAppointmentChanged, &eventsv1.AppointmentChanged{EventId: "ev-06", TenantId: "default", AppointmentId: "ap-1", TaskId: "t-1",
		VisitId: "v-1", CustomerId: wang, AgentId: "a-1", Change: eventsv1.AppointmentChange_APPOINTMENT_CHANGE_BOOKED,
		StartsAt: ledgerAt("2026-11-25T10:00:00Z"), EndsAt: ledgerAt("2026-11-25T11:00:00Z"), Reason: "客户要求", At: ledgerAt("2026-11-23T09:30:00Z")})
	pub(stream.SubjectVisitLogged, &eventsv1.VisitLogged{EventId: "ev-07", TenantId: "default", VisitId: "v-1", RecordId: "r-1", AgentId: "a-1",
		CustomerId: wang, Channel: typesv1.Channel_CHANNEL_ONSITE, Nps: proto.Int32(3), Comments: "刹车异响，客户很生气",
		LoggedAt: ledgerAt("2026-11-25T11:00:00Z")})
	pub(stream.SubjectComplaintEscalated, &eventsv1.ComplaintEscalated{EventId: "ev-08", TenantId: "default", ComplaintId: "cp-1", VisitId: "v-1",
		CustomerId: wang, Description: "刹车异响", Severity: "major", OwnerAgentId: "o-1", Level: 1, EscalatedAt: ledgerAt("2026-11-25T11:05:00Z")})
	pub(stream.SubjectComplaintClosed, &eventsv1.ComplaintClosed{EventId: "ev-11", TenantId: "default", ComplaintId: "cp-1", Outcome: "satisfied",
		Reason: "客户满意", By: "a-1", At: ledgerAt("2026-11-27T10:00:00Z")})
	// Another customer's entry and a visit nobody links: in no timeline of wang's.
	pub(stream.SubjectContactOptedOut, &eventsv1.ContactOptedOut{EventId: "ev-20", TenantId: "default", CustomerId: li,
		Channel: typesv1.Channel_CHANNEL_SMS, At: ledgerAt("2026-11-24T08:00:00Z")})
	pub(stream.SubjectVisitCancelled, &eventsv1.VisitCancelled{EventId: "ev-21", TenantId: "default", VisitId: "v-9", Reason: "stop",
		CancelledAt: ledgerAt("2026-11-24T08:00:00Z")})
	ledgerWait(t, d, 3+12)
	require.Zero(t, d.count(t, `SELECT count(*) FROM ledger_entries WHERE id IN ('ev-03', 'ev-10') AND customer_id <> $1`, wang),
		"entries that came before their link are attached once it came")

	dir := d.as(t, "dir-1", []string{"director"})
	all := timelineAll(t, d, dir, &intakev1.GetCustomerTimelineRequest{CustomerId: wang, PageSize: 3})
	K := func(k string) intakev1.TimelineEntryKind {
		return intakev1.TimelineEntryKind(intakev1.TimelineEntryKind_value["TIMELINE_ENTRY_KIND_"+k])
	}
	require.Equal(t, []intakev1.TimelineEntryKind{K("SERVICE"), K("VISIT_PLANNED"), K("VISIT_DUE"), K("VISIT_ASSIGNED"), K("ATTEMPT"), K("MESSAGE"),
		K("APPOINTMENT"), K("VISIT_LOGGED"), K("COMPLAINT_ESCALATED"), K("COMPLAINT_ACKNOWLEDGED"), K("COMPLAINT_CLOSED")}, timelineKinds(all))
	for i := 1; i < len(all); i++ {
		require.False(t, all[i].GetAt().AsTime().Before(all[i-1].GetAt().AsTime()), "time order")
	}
	byKind := map[intakev1.TimelineEntryKind]*intakev1.TimelineEntry{}
	for _, e := range all {
		byKind[e.GetKind()] = e
		require.Equal(t, wang, e.GetCustomerId())
	}
	require.Equal(t, "maintenance", byKind[K("SERVICE")].GetServiceType())
	require.NotEmpty(t, byKind[K("SERVICE")].GetServiceId())
	require.Equal(t, "a-1", byKind[K("VISIT_ASSIGNED")].GetAgentId())
	require.Equal(t, typesv1.Disposition_DISPOSITION_NO_ANSWER, byKind[K("ATTEMPT")].GetDisposition())
	require.Equal(t, "t-1", byKind[K("ATTEMPT")].GetTaskId())
	require.Equal(t, "sent", byKind[K("MESSAGE")].GetStatus())
	require.Equal(t, typesv1.Channel_CHANNEL_SMS, byKind[K("MESSAGE")].GetChannel())
	require.Equal(t, "booked", byKind[K("APPOINTMENT")].GetStatus())
	require.Equal(t, ledgerAt("2026-11-25T10:00:00Z").AsTime(), byKind[K("APPOINTMENT")].GetStartsAt().AsTime())
	require.EqualValues(t, 3, byKind[K("VISIT_LOGGED")].GetScore())
	require.Equal(t, "r-1", byKind[K("VISIT_LOGGED")].GetRecordId())
	require.Equal(t, typesv1.Severity_SEVERITY_MAJOR, byKind[K("COMPLAINT_ESCALATED")].GetSeverity())
	require.Equal(t, "satisfied", byKind[K("COMPLAINT_CLOSED")].GetStatus())

	// Filters: kinds, a time range, newest first (paged the other way).
	got := timelineAll(t, d, dir, &intakev1.GetCustomerTimelineRequest{CustomerId: wang, Kinds: []intakev1.TimelineEntryKind{K("ATTEMPT"), K("MESSAGE")}})
	require.Equal(t, []intakev1.TimelineEntryKind{K("ATTEMPT"), K("MESSAGE")}, timelineKinds(got))
	got = timelineAll(t, d, dir, &intakev1.GetCustomerTimelineRequest{CustomerId: wang, From: ledgerAt("2026-11-23T09:10:00Z"),
		To: ledgerAt("2026-11-25T11:00:00Z"), PageSize: 1})
	require.Equal(t, []intakev1.TimelineEntryKind{K("ATTEMPT"), K("MESSAGE"), K("APPOINTMENT")}, timelineKinds(got))
	got = timelineAll(t, d, dir, &intakev1.GetCustomerTimelineRequest{CustomerId: wang, NewestFirst: true, PageSize: 4})
	require.Len(t, got, len(all))
	for i := range got {
		require.Equal(t, all[len(all)-1-i].GetId(), got[i].GetId())
	}
	require.Equal(t, []intakev1.TimelineEntryKind{K("SERVICE"), K("OPTED_OUT")},
		timelineKinds(timelineAll(t, d, dir, &intakev1.GetCustomerTimelineRequest{CustomerId: li})))

	// Scoped as GetCustomer: agents and leaders of the customer's org units,
	// directors and department owners.
	for _, ctx := range []context.Context{d.as(t, "a-1", []string{"agent"}, "north"), d.as(t, "l-1", []string{"leader"}, "north"),
		d.as(t, "o-1", []string{"department_owner"})} {
		_, err := d.client.GetCustomerTimeline(ctx, &intakev1.GetCustomerTimelineRequest{CustomerId: wang})
		require.NoError(t, err)
	}
	for _, ctx := range []context.Context{d.as(t, "a-2", []string{"agent"}, "south"), d.as(t, "q-1", []string{"qa_reviewer"}),
		d.as(t, "adm-1", []string{"tenant_admin"})} {
		_, err := d.client.GetCustomerTimeline(ctx, &intakev1.GetCustomerTimelineRequest{CustomerId: wang})
		require.Equal(t, codes.PermissionDenied, status.Code(err))
	}
	_, err := d.client.GetCustomerTimeline(dir, &intakev1.GetCustomerTimelineRequest{CustomerId: "nobody"})
	require.Equal(t, codes.NotFound, status.Code(err))
	for _, tc := range []struct {
		req   *intakev1.GetCustomerTimelineRequest
		field string
	}{
		{&intakev1.GetCustomerTimelineRequest{}, "customer_id"},
		{&intakev1.GetCustomerTimelineRequest{CustomerId: wang, Kinds: []intakev1.TimelineEntryKind{0}}, "kinds[0]"},
		{&intakev1.GetCustomerTimelineRequest{CustomerId: wang, Kinds: []intakev1.TimelineEntryKind{99}}, "kinds[0]"},
		{&intakev1.GetCustomerTimelineRequest{CustomerId: wang, From: ledgerAt("2026-11-25T00:00:00Z"), To: ledgerAt("2026-11-24T00:00:00Z")}, "to"},
		{&intakev1.GetCustomerTimelineRequest{CustomerId: wang, PageToken: "x"}, "page_token"},
	} {
		_, err := d.client.GetCustomerTimeline(dir, tc.req)
		require.Equal(t, []string{tc.field}, searchViolations(t, err), "%v", tc.req)
	}

	// No free text, no contact: not what agents typed, not the masked forms.
	require.Zero(t, d.count(t, `SELECT count(*) FROM ledger_entries r WHERE r::text ~ '(刹车|客户|王|8000)'`))

	// Erasure: the entry of the erasure; ids and kinds stay, nothing personal.
	admin := d.as(t, "adm-1", []string{"tenant_admin"})
	_, err = d.client.EraseCustomer(admin, &intakev1.EraseCustomerRequest{CustomerId: wang, Reason: "the customer asked, ticket 4711"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return d.count(t, `SELECT count(*) FROM ledger_entries WHERE kind = 'erased' AND customer_id = $1`, wang) == 1
	}, 20*time.Second, 20*time.Millisecond)
	after := timelineAll(t, d, dir, &intakev1.GetCustomerTimelineRequest{CustomerId: wang, NewestFirst: true, PageSize: 1})
	require.Equal(t, K("ERASED"), after[0].GetKind())
	require.Len(t, after, len(all)+1)
	require.Zero(t, d.count(t, `SELECT count(*) FROM ledger_entries r WHERE r::text ~ '(王|8000|13800138000)'`))
	require.Zero(t, d.count(t, `SELECT count(*) FROM ledger_links r WHERE r::text ~ '(王|8000|13800138000)'`))
}
