// Package wire turns feedback's domain values (answers, problems,
// attachments, promised replies, field changes, questions, checklist
// scores) into the huifang protobuf messages of the same name and back:
// the store keeps them in jsonb columns as protojson of these messages, the
// app puts them in events, grpcapi in responses. It holds no rule.
package wire

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/record"
	"github.com/huifang/huifang/services/feedback/internal/review"
)

// each maps a list, nil for an empty one.
func each[A, B any](in []A, f func(A) B) []B {
	if len(in) == 0 {
		return nil
	}
	out := make([]B, len(in))
	for i, a := range in {
		out[i] = f(a)
	}
	return out
}

// Timestamp is t as a protobuf timestamp, nil for the zero time.
func Timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// Time is ts as a time, zero for nil. Check ts with CheckValid first
// where it comes from outside.
func Time(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

func ptr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// AnswersToProto returns answers as messages.
func AnswersToProto(answers []questionnaire.Answer) []*typesv1.Answer {
	return each(answers, func(a questionnaire.Answer) *typesv1.Answer {
		return &typesv1.Answer{QuestionId: a.QuestionID, Aspect: a.Aspect, Rating: a.Rating, Comment: a.Comment,
			Score: ptr(a.Score), Yes: ptr(a.Yes), Choice: a.Choice, Text: a.Text}
	})
}

// AnswersFromProto returns messages as answers.
func AnswersFromProto(list []*typesv1.Answer) []questionnaire.Answer {
	return each(list, func(a *typesv1.Answer) questionnaire.Answer {
		return questionnaire.Answer{QuestionID: a.GetQuestionId(), Aspect: a.GetAspect(), Rating: a.GetRating(), Comment: a.GetComment(),
			Score: ptr(a.Score), Yes: ptr(a.Yes), Choice: a.GetChoice(), Text: a.GetText()}
	})
}

// ProblemsToProto returns problems as messages.
func ProblemsToProto(problems []record.Problem) []*typesv1.Problem {
	return each(problems, func(p record.Problem) *typesv1.Problem {
		return &typesv1.Problem{Category: p.Category, Description: p.Description, Severity: p.Severity,
			Anonymous: p.Anonymous, WrittenReplyOnly: p.WrittenReplyOnly}
	})
}

// ProblemsFromProto returns messages as problems.
func ProblemsFromProto(list []*typesv1.Problem) []record.Problem {
	return each(list, func(p *typesv1.Problem) record.Problem {
		return record.Problem{Category: p.GetCategory(), Description: p.GetDescription(), Severity: p.GetSeverity(),
			Anonymous: p.GetAnonymous(), WrittenReplyOnly: p.GetWrittenReplyOnly()}
	})
}

// AttachmentsToProto returns attachments as messages.
func AttachmentsToProto(list []record.Attachment) []*feedbackv1.Attachment {
	return each(list, func(a record.Attachment) *feedbackv1.Attachment {
		return &feedbackv1.Attachment{Kind: a.Kind, Ref: a.Ref}
	})
}

// AttachmentsFromProto returns messages as attachments.
func AttachmentsFromProto(list []*feedbackv1.Attachment) []record.Attachment {
	return each(list, func(a *feedbackv1.Attachment) record.Attachment {
		return record.Attachment{Kind: a.GetKind(), Ref: a.GetRef()}
	})
}

// PromisedRepliesToProto returns promised replies as messages.
func PromisedRepliesToProto(list []record.PromisedReply) []*feedbackv1.PromisedReply {
	return each(list, func(p record.PromisedReply) *feedbackv1.PromisedReply {
		return &feedbackv1.PromisedReply{Question: p.Question, PromisedAt: Timestamp(p.PromisedAt), Channel: p.Channel}
	})
}

// PromisedRepliesFromProto returns messages as promised replies; the
// caller checks the timestamps of messages from outside.
func PromisedRepliesFromProto(list []*feedbackv1.PromisedReply) []record.PromisedReply {
	return each(list, func(p *feedbackv1.PromisedReply) record.PromisedReply {
		return record.PromisedReply{Question: p.GetQuestion(), PromisedAt: Time(p.GetPromisedAt()), Channel: p.GetChannel()}
	})
}

// FieldChangesToProto returns field changes as messages.
func FieldChangesToProto(list []record.FieldChange) []*feedbackv1.FieldChange {
	return each(list, func(c record.FieldChange) *feedbackv1.FieldChange {
		return &feedbackv1.FieldChange{Field: c.Field, OldValue: c.OldValue, NewValue: c.NewValue}
	})
}

// FieldChangesFromProto returns messages as field changes.
func FieldChangesFromProto(list []*feedbackv1.FieldChange) []record.FieldChange {
	return each(list, func(c *feedbackv1.FieldChange) record.FieldChange {
		return record.FieldChange{Field: c.GetField(), OldValue: c.GetOldValue(), NewValue: c.GetNewValue()}
	})
}

// QuestionsToProto returns questions as messages.
func QuestionsToProto(list []questionnaire.Question) []*feedbackv1.Question {
	return each(list, func(q questionnaire.Question) *feedbackv1.Question {
		return &feedbackv1.Question{Id: q.ID, Aspect: q.Aspect, Text: q.Text, Kind: q.Kind, Required: q.Required,
			Choices: append([]string(nil), q.Choices...)}
	})
}

// QuestionsFromProto returns messages as questions.
func QuestionsFromProto(list []*feedbackv1.Question) []questionnaire.Question {
	return each(list, func(q *feedbackv1.Question) questionnaire.Question {
		return questionnaire.Question{ID: q.GetId(), Aspect: q.GetAspect(), Text: q.GetText(), Kind: q.GetKind(), Required: q.GetRequired(),
			Choices: append([]string(nil), q.GetChoices()...)}
	})
}

// ScoresToProto returns checklist scores as messages.
func ScoresToProto(list []review.ItemScore) []*feedbackv1.ChecklistScore {
	return each(list, func(s review.ItemScore) *feedbackv1.ChecklistScore {
		return &feedbackv1.ChecklistScore{Item: s.Item, Score: s.Score, Comment: s.Comment}
	})
}

// ScoresFromProto returns messages as checklist scores.
func ScoresFromProto(list []*feedbackv1.ChecklistScore) []review.ItemScore {
	return each(list, func(s *feedbackv1.ChecklistScore) review.ItemScore {
		return review.ItemScore{Item: s.GetItem(), Score: s.GetScore(), Comment: s.GetComment()}
	})
}
