package app

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/enum"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/record"
	"github.com/huifang/huifang/services/feedback/internal/review"
	"github.com/huifang/huifang/services/feedback/internal/store"
	"github.com/huifang/huifang/services/feedback/internal/visit"
	"github.com/huifang/huifang/services/feedback/internal/wire"
)

// event is a protobuf event with its id.
type event interface {
	proto.Message
	GetEventId() string
}

// publish writes ev to the outbox within tx; it leaves on subject once tx
// commits. The one place of the service that writes events.
func publish(ctx context.Context, tx pgx.Tx, subject string, ev event) error {
	_, err := outbox.Add(ctx, tx, outbox.Message{ID: ev.GetEventId(), Subject: subject, Payload: ev})
	return err
}

// logStep adds a step the domain decided to a complaint's history and
// writes the events the step stands for: opening and escalating hand the
// complaint to its department (ComplaintEscalated), reopening tells the
// department it is back (ComplaintReopened, then ComplaintEscalated one
// level up), and each other step of the loop has its event. c is the
// complaint after the step.
func logStep(ctx context.Context, tx pgx.Tx, c complaint.Complaint, s complaint.Step) error {
	if err := store.AddStep(ctx, tx, c.ID, s); err != nil {
		return err
	}
	at := timestamppb.New(s.At)
	switch s.Kind {
	case complaint.StepOpened, complaint.StepEscalated:
		return escalated(ctx, tx, c, s.At)
	case complaint.StepReopened:
		ev := &eventsv1.ComplaintReopened{EventId: newID(), TenantId: c.TenantID, ComplaintId: c.ID,
			Level: c.Level, At: at, Department: c.Department}
		if err := publish(ctx, tx, stream.SubjectComplaintReopened, ev); err != nil {
			return err
		}
		return escalated(ctx, tx, c, s.At)
	case complaint.StepAcknowledged:
		return publish(ctx, tx, stream.SubjectComplaintAcknowledged,
			&eventsv1.ComplaintAcknowledged{EventId: newID(), TenantId: c.TenantID, ComplaintId: c.ID, By: s.By, At: at})
	case complaint.StepResolved:
		return publish(ctx, tx, stream.SubjectComplaintResolved, resolvedEvent(c, s))
	case complaint.StepClosed:
		return publish(ctx, tx, stream.SubjectComplaintClosed, &eventsv1.ComplaintClosed{EventId: newID(), TenantId: c.TenantID,
			ComplaintId: c.ID, Outcome: c.Outcome, By: s.By, At: at, OrgUnit: c.OrgUnit,
			Category: c.Category, EscalatedAt: timestamppb.New(c.CreatedAt)})
	}
	return nil
}

// escalated builds and writes the ComplaintEscalated that hands c, at its
// current level, to its department: the only place that does.
func escalated(ctx context.Context, tx pgx.Tx, c complaint.Complaint, at time.Time) error {
	return publish(ctx, tx, stream.SubjectComplaintEscalated, &eventsv1.ComplaintEscalated{
		EventId:      newID(),
		TenantId:     c.TenantID,
		ComplaintId:  c.ID,
		VisitId:      c.VisitID,
		CustomerId:   c.CustomerID,
		Category:     c.Category,
		Department:   c.Department,
		Severity:     c.Severity,
		Deadline:     timestamppb.New(c.Deadline),
		EscalatedAt:  timestamppb.New(at),
		OrgUnit:      c.OrgUnit,
		OwnerAgentId: c.OwnerAgentID,
		Level:        c.Level,
		ServiceId:    c.ServiceID,
	})
}

// resolvedEvent is the ComplaintResolved on which the scheduler plans the
// visit that confirms the resolution with the customer, unless the
// complaint needs no follow-up (no_follow_up).
func resolvedEvent(c complaint.Complaint, s complaint.Step) *eventsv1.ComplaintResolved {
	severity, _ := enum.Parse[typesv1.Severity](c.Severity)
	return &eventsv1.ComplaintResolved{
		EventId: newID(), TenantId: c.TenantID, ComplaintId: c.ID, CustomerId: c.CustomerID, VisitId: c.VisitID,
		By: s.By, ResolvedAt: timestamppb.New(s.At), OrgUnit: c.OrgUnit,
		Category: c.Category, Department: c.Department, Severity: severity, EscalatedAt: timestamppb.New(c.CreatedAt),
		Customer: &typesv1.Customer{Id: c.CustomerID, OrgUnit: c.OrgUnit}, ServiceId: c.ServiceID,
		NoFollowUp: c.NoFollowUp(),
	}
}

// The events feedback publishes carry no free text (what an agent typed:
// comments, answers' comments and text, problem descriptions, a
// complaint's description, root cause, action and the reasons it was
// reopened or closed): it may name people, and
// a published event cannot be erased; no consumer needs it, and feedback's
// API shows it to the staff in scope (docs/privacy.md).

// withoutText blanks the answers' free text.
func withoutText(answers []*typesv1.Answer) []*typesv1.Answer {
	for _, a := range answers {
		a.Comment, a.Text = "", ""
	}
	return answers
}

// withoutDescriptions blanks the problems' descriptions.
func withoutDescriptions(problems []*typesv1.Problem) []*typesv1.Problem {
	for _, p := range problems {
		p.Description = ""
	}
	return problems
}

// visitLogged is the VisitLogged that reports rec, with the visit's
// context and the questionnaire q its answers were checked against (nil: none).
func visitLogged(rec record.Record, v visit.Visit, q *questionnaire.Questionnaire) *eventsv1.VisitLogged {
	return &eventsv1.VisitLogged{
		QuestionnaireId:      rec.QuestionnaireID,
		QuestionnaireVersion: rec.QuestionnaireVersion,
		Nps:                  questionnaire.NPS(q, rec.Answers),
		EventId:              newID(),
		TenantId:             rec.TenantID,
		VisitId:              rec.VisitID,
		RecordId:             rec.ID,
		AgentId:              rec.AgentID,
		Channel:              rec.Channel,
		Answers:              withoutText(wire.AnswersToProto(rec.Answers)),
		Problems:             withoutDescriptions(wire.ProblemsToProto(rec.Problems)),
		LoggedAt:             timestamppb.New(rec.LoggedAt),
		OccurredAt:           timestamppb.New(rec.OccurredAt),
		NoShowReason:         noShowReason(rec.NoShow),
		OrgUnit:              v.OrgUnit,
		ServiceType:          v.ServiceType,
		PolicyId:             v.PolicyID,
		CustomerId:           v.CustomerID,
		ServiceId:            v.ServiceID,
		DueAt:                wire.Timestamp(v.DueAt),
		Deadline:             wire.Timestamp(v.Deadline),
		ServiceCompletedAt:   wire.Timestamp(v.ServiceCompletedAt),
	}
}

// noShowReason is the reason of a no-show, without its note (no free text
// in events); unspecified when the customer came.
func noShowReason(n *record.NoShow) typesv1.NoShowReason {
	if n == nil {
		return typesv1.NoShowReason_NO_SHOW_REASON_UNSPECIFIED
	}
	return n.Reason
}

// followUpRequested asks the scheduler for the follow-up a promised reply
// needs (seed 000): due when the answer was promised, within the 48 hours
// of seed 003, through the reply's channel (the record's when unset).
func followUpRequested(rec record.Record, v visit.Visit, p record.PromisedReply) *eventsv1.FollowUpRequested {
	return &eventsv1.FollowUpRequested{
		EventId: newID(), TenantId: rec.TenantID, CustomerId: rec.CustomerID, ServiceId: v.ServiceID,
		PreviousVisitId: rec.VisitID, DueAt: timestamppb.New(p.PromisedAt), Deadline: timestamppb.New(p.PromisedAt.Add(complaint.DefaultDeadline)),
		Channel: p.Channel, Reason: "promised reply: " + p.Question, OrgUnit: v.OrgUnit,
		Customer: &typesv1.Customer{Id: rec.CustomerID, OrgUnit: v.OrgUnit},
	}
}

// reviewSubmitted reports a QA review of a record of org unit orgUnit.
func reviewSubmitted(r review.Review, orgUnit string) *eventsv1.ReviewSubmitted {
	return &eventsv1.ReviewSubmitted{EventId: newID(), TenantId: r.TenantID, ReviewId: r.ID, RecordId: r.RecordID,
		AgentId: r.AgentID, ReviewerId: r.ReviewerID, Score: r.Score, At: timestamppb.New(r.At), OrgUnit: orgUnit}
}
