package wire_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/record"
	"github.com/huifang/huifang/services/feedback/internal/review"
	"github.com/huifang/huifang/services/feedback/internal/wire"
)

// Every field makes the round trip; empty lists are nil both ways.
func TestRoundTrips(t *testing.T) {
	score, yes := int32(9), true
	answers := []questionnaire.Answer{
		{QuestionID: "recommend", Aspect: "recommend", Score: &score, Comment: "c"},
		{Aspect: "overall", Rating: typesv1.Rating_RATING_FAIRLY_SATISFIED},
		{QuestionID: "q", Yes: &yes, Choice: "a", Text: "t"},
	}
	require.Equal(t, answers, wire.AnswersFromProto(wire.AnswersToProto(answers)))
	msgs := wire.AnswersToProto(answers)
	require.True(t, proto.Equal(&typesv1.Answer{QuestionId: "recommend", Aspect: "recommend", Score: proto.Int32(9), Comment: "c"}, msgs[0]))
	*msgs[0].Score = 1
	require.EqualValues(t, 9, score, "messages do not share the domain's values")

	problems := []record.Problem{{Category: "billing", Description: "d", Severity: typesv1.Severity_SEVERITY_MAJOR, Anonymous: true, WrittenReplyOnly: true}}
	require.Equal(t, problems, wire.ProblemsFromProto(wire.ProblemsToProto(problems)))
	attachments := []record.Attachment{{Kind: "call_recording", Ref: "r"}}
	require.Equal(t, attachments, wire.AttachmentsFromProto(wire.AttachmentsToProto(attachments)))
	promised := []record.PromisedReply{{Question: "q", PromisedAt: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), Channel: typesv1.Channel_CHANNEL_SMS}}
	require.Equal(t, promised, wire.PromisedRepliesFromProto(wire.PromisedRepliesToProto(promised)))
	changes := []record.FieldChange{{Field: "comments", OldValue: "a", NewValue: "b"}}
	require.Equal(t, changes, wire.FieldChangesFromProto(wire.FieldChangesToProto(changes)))
	questions := []questionnaire.Question{{ID: "q", Aspect: "a", Text: "t", Kind: feedbackv1.QuestionKind_QUESTION_KIND_CHOICE, Required: true, Choices: []string{"x", "y"}}}
	require.Equal(t, questions, wire.QuestionsFromProto(wire.QuestionsToProto(questions)))
	scores := []review.ItemScore{{Item: "purpose_stated", Score: 4, Comment: "c"}}
	require.Equal(t, scores, wire.ScoresFromProto(wire.ScoresToProto(scores)))

	require.Nil(t, wire.AnswersToProto(nil))
	require.Nil(t, wire.AnswersFromProto([]*typesv1.Answer{}))
	require.Nil(t, wire.Timestamp(time.Time{}))
	require.True(t, wire.Time(nil).IsZero())
}
