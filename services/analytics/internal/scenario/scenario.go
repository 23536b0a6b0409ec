// Package scenario is a small month of follow-up events whose figures were
// computed by hand from the seeds' definitions (see docs/figures.md); the
// tests of the consumer, the API and the reports publish it and compare.
package scenario

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/stream"
)

// Event is one event as the outbox publishes it.
type Event struct {
	ID      string
	Subject string
	Msg     proto.Message
}

// March is the scenario's month: [From, To).
var (
	From = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	To   = time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
)

func at(month time.Month, day, hour int) *timestamppb.Timestamp {
	return timestamppb.New(time.Date(2025, month, day, hour, 0, 0, 0, time.UTC))
}

func mar(day, hour int) *timestamppb.Timestamp { return at(time.March, day, hour) }

func answer(aspect string, r typesv1.Rating) *typesv1.Answer {
	return &typesv1.Answer{Aspect: aspect, Rating: r}
}

const (
	s  = typesv1.Rating_RATING_SATISFIED
	f  = typesv1.Rating_RATING_FAIRLY_SATISFIED
	u  = typesv1.Rating_RATING_UNSATISFIED
	ph = typesv1.Channel_CHANNEL_PHONE
)

func nps(n int32) *int32 { return &n }

// Events returns the scenario in stream order:
//
//   - v1 north, due 1 Mar, deadline 3 Mar, service 28 Feb 12:00; agent a1 answers
//     on the first attempt; logged 1 Mar 12:00 (24 h): overall A, staff_attitude A.
//   - v2 north, due 1 Mar, deadline 2 Mar 00:00, service 27 Feb; logged 2 Mar 12:00 by
//     a1, late and after 48 h: overall B, a product_quality problem.
//   - v3 south, due 2 Mar, for service s4 (completed before the stream's
//     start: no ServiceCompleted here), a2 tries twice without answer: unreachable.
//   - v4 south, planned for 2 Mar and cancelled: not due.
//   - v5 south, due 3 Mar, service 2 Mar; logged 3 Mar 09:00 by a2 (33 h), product
//     fridge: overall C, staff_attitude C, NPS 3, a service_quality problem.
//   - v6 north, due 4 Mar, deadline 6 Mar; logged 4 Mar by a1, no rating, NPS 10.
//   - complaint c1 (v2) escalated 2 Mar 12:00, acknowledged 2 Mar 18:00 (6 h),
//     resolved 4 Mar 12:00, closed 5 Mar;
//     c2 (v5) escalated 3 Mar, deadline 4 Mar 09:00, never resolved.
//   - QA reviews of a1: 90 and 70.
//   - services: cu1 on 1 Aug 2024 and again 28 Feb 2025 (won back after 7
//     months); cu2 27 Feb; cu3 2 Mar (fridge, south). s1 and s2 are washers.
//   - per served service (seed 003 coverage): s1 (v1, v6) and s2 (v2) followed
//     up, first due 1 Mar; s4 (v3) due 2 Mar, never followed up; s3 (v4
//     cancelled, v5 made) first due 3 Mar, followed up: 3 of 4.
//   - per served customer (seed 003): s1 and s4 are cu1's, s2 cu2's, s3 cu3's.
//     March: cu1 (s1 followed up), cu2, cu3 all followed up: 3 of 3; north
//     (s1, s2): 2 of 2; south (s4 of cu1 never followed up, s3 of cu3): 1 of 2.
func Events() []Event {
	return []Event{
		{"s0", stream.SubjectServiceCompleted, &eventsv1.ServiceCompleted{EventId: "s0", ServiceId: "s0", ServiceType: "repair", OrgUnit: "north",
			CompletedAt: timestamppb.New(time.Date(2024, 8, 1, 10, 0, 0, 0, time.UTC)), Customer: &typesv1.Customer{Id: "cu1"}, Product: &typesv1.Product{Category: "washer"}}},
		{"s1", stream.SubjectServiceCompleted, &eventsv1.ServiceCompleted{EventId: "s1", ServiceId: "s1", ServiceType: "repair", OrgUnit: "north",
			CompletedAt: at(time.February, 28, 12), Customer: &typesv1.Customer{Id: "cu1"}, Product: &typesv1.Product{Category: "washer"}}},
		{"s2", stream.SubjectServiceCompleted, &eventsv1.ServiceCompleted{EventId: "s2", ServiceId: "s2", ServiceType: "repair", OrgUnit: "north",
			CompletedAt: at(time.February, 27, 0), Customer: &typesv1.Customer{Id: "cu2"}, Product: &typesv1.Product{Category: "washer"}}},
		{"s3", stream.SubjectServiceCompleted, &eventsv1.ServiceCompleted{EventId: "s3", ServiceId: "s3", ServiceType: "installation", OrgUnit: "south",
			CompletedAt: mar(2, 0), Customer: &typesv1.Customer{Id: "cu3"}, Product: &typesv1.Product{Category: "fridge"}}},

		{"p1", stream.SubjectVisitPlanned, &eventsv1.VisitPlanned{EventId: "p1", CustomerId: "cu1", VisitId: "v1", ServiceId: "s1", PolicyId: "p-repair", Channel: ph, DueAt: mar(1, 10), Deadline: mar(3, 10), OrgUnit: "north", ServiceType: "repair"}},
		{"d1", stream.SubjectVisitDue, &eventsv1.VisitDue{EventId: "d1", Customer: &typesv1.Customer{Id: "cu1"}, VisitId: "v1", ServiceId: "s1", PolicyId: "p-repair", Channel: ph, DueAt: mar(1, 10), Deadline: mar(3, 10), OrgUnit: "north", ServiceType: "repair", ServiceCompletedAt: at(time.February, 28, 12)}},
		{"d2", stream.SubjectVisitDue, &eventsv1.VisitDue{EventId: "d2", Customer: &typesv1.Customer{Id: "cu2"}, VisitId: "v2", ServiceId: "s2", PolicyId: "p-repair", Channel: ph, DueAt: mar(1, 10), Deadline: mar(2, 0), OrgUnit: "north", ServiceType: "repair", ServiceCompletedAt: at(time.February, 27, 0)}},
		{"d3", stream.SubjectVisitDue, &eventsv1.VisitDue{EventId: "d3", Customer: &typesv1.Customer{Id: "cu1"}, VisitId: "v3", ServiceId: "s4", PolicyId: "p-install", Channel: ph, DueAt: mar(2, 10), Deadline: mar(4, 10), OrgUnit: "south", ServiceType: "installation"}},
		{"p4", stream.SubjectVisitPlanned, &eventsv1.VisitPlanned{EventId: "p4", CustomerId: "cu3", VisitId: "v4", ServiceId: "s3", PolicyId: "p-install", Channel: ph, DueAt: mar(2, 10), OrgUnit: "south", ServiceType: "installation"}},
		{"x4", stream.SubjectVisitCancelled, &eventsv1.VisitCancelled{EventId: "x4", VisitId: "v4", Reason: "customer opted out", CancelledAt: mar(1, 0)}},
		{"a1", stream.SubjectVisitAssigned, &eventsv1.VisitAssigned{EventId: "a1", VisitId: "v1", AgentId: "a1", AssignedAt: mar(1, 10)}},
		{"t1", stream.SubjectVisitAttempted, &eventsv1.VisitAttempted{EventId: "t1", VisitId: "v1", AgentId: "a1", Channel: ph, Disposition: typesv1.Disposition_DISPOSITION_ANSWERED, Attempt: 1, AttemptedAt: mar(1, 11), OrgUnit: "north"}},
		{"l1", stream.SubjectVisitLogged, &eventsv1.VisitLogged{EventId: "l1", VisitId: "v1", RecordId: "r1", AgentId: "a1", Channel: ph, LoggedAt: mar(1, 12), OrgUnit: "north", ServiceType: "repair", PolicyId: "p-repair", ServiceId: "s1",
			Answers: []*typesv1.Answer{answer("overall", s), answer("staff_attitude", s)}}},
		{"a2", stream.SubjectVisitAssigned, &eventsv1.VisitAssigned{EventId: "a2", VisitId: "v2", AgentId: "a1", AssignedAt: mar(1, 10)}},
		{"l2", stream.SubjectVisitLogged, &eventsv1.VisitLogged{EventId: "l2", VisitId: "v2", RecordId: "r2", AgentId: "a1", Channel: ph, LoggedAt: mar(2, 12), OrgUnit: "north", ServiceType: "repair", PolicyId: "p-repair", ServiceId: "s2",
			Answers: []*typesv1.Answer{answer("overall", f)}, Problems: []*typesv1.Problem{{Category: "product_quality", Description: "漏水"}}}},
		{"c1", stream.SubjectComplaintEscalated, &eventsv1.ComplaintEscalated{EventId: "c1", ComplaintId: "c1", VisitId: "v2", Category: "product_quality", Department: "rd", Severity: "general",
			Deadline: mar(5, 12), EscalatedAt: mar(2, 12), OrgUnit: "north", OwnerAgentId: "a1", ProductCategory: "washer"}},
		{"k1", stream.SubjectComplaintAcknowledged, &eventsv1.ComplaintAcknowledged{EventId: "k1", ComplaintId: "c1", By: "rd-lead", At: mar(2, 18)}},
		{"a3", stream.SubjectVisitAssigned, &eventsv1.VisitAssigned{EventId: "a3", VisitId: "v3", AgentId: "a2", AssignedAt: mar(2, 10)}},
		{"t3a", stream.SubjectVisitAttempted, &eventsv1.VisitAttempted{EventId: "t3a", VisitId: "v3", AgentId: "a2", Channel: ph, Disposition: typesv1.Disposition_DISPOSITION_NO_ANSWER, Attempt: 1, AttemptedAt: mar(2, 11), OrgUnit: "south"}},
		{"t3b", stream.SubjectVisitAttempted, &eventsv1.VisitAttempted{EventId: "t3b", VisitId: "v3", AgentId: "a2", Channel: ph, Disposition: typesv1.Disposition_DISPOSITION_NO_ANSWER, Attempt: 2, AttemptedAt: mar(3, 11), OrgUnit: "south"}},
		{"n3", stream.SubjectVisitUnreachable, &eventsv1.VisitUnreachable{EventId: "n3", VisitId: "v3", Attempts: 2, Reason: "no answer", At: mar(3, 11), OrgUnit: "south"}},
		{"d5", stream.SubjectVisitDue, &eventsv1.VisitDue{EventId: "d5", Customer: &typesv1.Customer{Id: "cu3"}, VisitId: "v5", ServiceId: "s3", PolicyId: "p-install", Channel: ph, DueAt: mar(3, 8), Deadline: mar(5, 8), OrgUnit: "south", ServiceType: "installation", ServiceCompletedAt: mar(2, 0)}},
		{"a5", stream.SubjectVisitAssigned, &eventsv1.VisitAssigned{EventId: "a5", VisitId: "v5", AgentId: "a2", AssignedAt: mar(3, 8)}},
		{"l5", stream.SubjectVisitLogged, &eventsv1.VisitLogged{EventId: "l5", VisitId: "v5", RecordId: "r5", AgentId: "a2", Channel: ph, LoggedAt: mar(3, 9), OrgUnit: "south", ServiceType: "installation", PolicyId: "p-install", ServiceId: "s3", ProductCategory: "fridge",
			Answers: []*typesv1.Answer{answer("overall", u), answer("staff_attitude", u)}, Nps: nps(3), Problems: []*typesv1.Problem{{Category: "service_quality", Description: "迟到"}}}},
		{"c2", stream.SubjectComplaintEscalated, &eventsv1.ComplaintEscalated{EventId: "c2", ComplaintId: "c2", VisitId: "v5", Category: "service_quality", Department: "after_sales", Severity: "general",
			Deadline: mar(4, 9), EscalatedAt: mar(3, 9), OrgUnit: "south", OwnerAgentId: "a2", ProductCategory: "fridge"}},
		{"d6", stream.SubjectVisitDue, &eventsv1.VisitDue{EventId: "d6", Customer: &typesv1.Customer{Id: "cu1"}, VisitId: "v6", ServiceId: "s1", PolicyId: "p-repair", Channel: ph, DueAt: mar(4, 8), Deadline: mar(6, 8), OrgUnit: "north", ServiceType: "repair"}},
		{"a6", stream.SubjectVisitAssigned, &eventsv1.VisitAssigned{EventId: "a6", VisitId: "v6", AgentId: "a1", AssignedAt: mar(4, 8)}},
		{"l6", stream.SubjectVisitLogged, &eventsv1.VisitLogged{EventId: "l6", VisitId: "v6", RecordId: "r6", AgentId: "a1", Channel: ph, LoggedAt: mar(4, 9), OrgUnit: "north", ServiceType: "repair", PolicyId: "p-repair", ServiceId: "s1", Nps: nps(10)}},
		{"rs1", stream.SubjectComplaintResolved, &eventsv1.ComplaintResolved{EventId: "rs1", ComplaintId: "c1", VisitId: "v2", ResolvedAt: mar(4, 12), OrgUnit: "north", Category: "product_quality", EscalatedAt: mar(2, 12)}},
		{"cl1", stream.SubjectComplaintClosed, &eventsv1.ComplaintClosed{EventId: "cl1", ComplaintId: "c1", Outcome: "satisfied", At: mar(5, 10), OrgUnit: "north", Category: "product_quality", EscalatedAt: mar(2, 12)}},
		{"q1", stream.SubjectReviewSubmitted, &eventsv1.ReviewSubmitted{EventId: "q1", ReviewId: "q1", RecordId: "r1", AgentId: "a1", ReviewerId: "lead", Score: 90, At: mar(5, 10), OrgUnit: "north"}},
		{"q2", stream.SubjectReviewSubmitted, &eventsv1.ReviewSubmitted{EventId: "q2", ReviewId: "q2", RecordId: "r2", AgentId: "a1", ReviewerId: "lead", Score: 70, At: mar(5, 11), OrgUnit: "north"}},
	}
}
