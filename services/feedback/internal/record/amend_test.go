package record_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/feedback/internal/record"
)

func TestAmendKeepsTheOriginal(t *testing.T) {
	orig := &feedbackv1.VisitRecord{Id: "r-1", Channel: typesv1.Channel_CHANNEL_PHONE, Comments: "ok",
		Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}, {Aspect: "parking", Rating: typesv1.Rating_RATING_SATISFIED}}}
	before := proto.CloneOf(orig)
	comments := "the customer said the parking was full"
	req := &feedbackv1.AmendVisitRecordRequest{RecordId: "r-1", By: "leader-1", Reason: "misheard",
		Answers:  []*typesv1.Answer{{Aspect: "parking", Rating: typesv1.Rating_RATING_UNSATISFIED}},
		Comments: &comments, Attachments: []*feedbackv1.Attachment{{Kind: "call_recording", Ref: "rec-9"}}}
	record.NormalizeAmend(req)
	require.NoError(t, record.ValidateAmend(req))
	c, changes, err := record.Amend(orig, nil, req)
	require.NoError(t, err)
	require.True(t, proto.Equal(before, orig), "seed 004: the record is not altered")
	require.Equal(t, []*feedbackv1.FieldChange{
		{Field: "answers[parking]", OldValue: "RATING_SATISFIED", NewValue: "RATING_UNSATISFIED"},
		{Field: "comments", OldValue: "ok", NewValue: comments},
		{Field: "attachments", NewValue: "call_recording:rec-9"},
	}, changes)
	cur := record.Apply(orig, c)
	require.Equal(t, typesv1.Rating_RATING_UNSATISFIED, cur.Answers[1].Rating)
	require.Equal(t, typesv1.Rating_RATING_SATISFIED, cur.Answers[0].Rating)
	require.Equal(t, comments, cur.Comments)
	require.True(t, proto.Equal(before, orig))

	// The same answers and comments again change nothing and are refused.
	req.Attachments = nil
	_, _, err = record.Amend(cur, nil, req)
	_, bad := invalid.As(err)
	require.True(t, bad, "%v", err)
}

func TestValidateAmend(t *testing.T) {
	err := record.ValidateAmend(&feedbackv1.AmendVisitRecordRequest{})
	e, ok := invalid.As(err)
	require.True(t, ok)
	var fields []string
	for _, v := range e.Violations {
		fields = append(fields, v.Field)
	}
	require.Equal(t, []string{"record_id", "by", "reason", "answers"}, fields, "seed 004: who, what and why")
}
