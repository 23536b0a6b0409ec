package record_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/record"
)

func TestAmendKeepsTheOriginal(t *testing.T) {
	orig := record.Record{ID: "r-1", Channel: typesv1.Channel_CHANNEL_PHONE, Comments: "ok",
		Answers: []questionnaire.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}, {Aspect: "parking", Rating: typesv1.Rating_RATING_SATISFIED}}}
	before := clone(orig)
	comments := "the customer said the parking was full"
	req := &record.AmendDraft{RecordID: "r-1", By: "leader-1", Reason: "misheard", Correction: record.Correction{
		Answers:  []questionnaire.Answer{{Aspect: "parking", Rating: typesv1.Rating_RATING_UNSATISFIED}},
		Comments: &comments, Attachments: []record.Attachment{{Kind: "call_recording", Ref: "rec-9"}}}}
	record.NormalizeAmend(req)
	require.NoError(t, record.ValidateAmend(*req))
	at := time.Date(2025, 3, 2, 10, 0, 0, 0, time.UTC)
	a, err := record.Amend("am-1", orig, nil, *req, at)
	require.NoError(t, err)
	require.Equal(t, before, orig, "seed 004: the record is not altered")
	require.Equal(t, []record.FieldChange{
		{Field: "answers[parking]", OldValue: "RATING_SATISFIED", NewValue: "RATING_UNSATISFIED"},
		{Field: "comments", OldValue: "ok", NewValue: comments},
		{Field: "attachments", NewValue: "call_recording:rec-9"},
	}, a.Changes)
	require.Equal(t, []string{"am-1", "r-1", "leader-1", "misheard"}, []string{a.ID, a.RecordID, a.By, a.Reason})
	require.Equal(t, at, a.At)
	cur := record.Apply(orig, a.Correction)
	require.Equal(t, typesv1.Rating_RATING_UNSATISFIED, cur.Answers[1].Rating)
	require.Equal(t, typesv1.Rating_RATING_SATISFIED, cur.Answers[0].Rating)
	require.Equal(t, comments, cur.Comments)
	require.Equal(t, before, orig)
	require.Equal(t, cur, record.Current(orig, []record.Amendment{a}), "the current form is the record with its amendments applied")

	// The same answers and comments again change nothing and are refused.
	req.Attachments = nil
	_, err = record.Amend("am-2", cur, nil, *req, at)
	_, bad := invalid.As(err)
	require.True(t, bad, "%v", err)
}

// clone copies a record deeply enough to see that Amend and Apply change nothing of it.
func clone(r record.Record) record.Record {
	r.Answers = append([]questionnaire.Answer(nil), r.Answers...)
	r.Attachments = append([]record.Attachment(nil), r.Attachments...)
	return r
}

func TestValidateAmend(t *testing.T) {
	err := record.ValidateAmend(record.AmendDraft{})
	e, ok := invalid.As(err)
	require.True(t, ok)
	var fields []string
	for _, v := range e.Violations {
		fields = append(fields, v.Field)
	}
	require.Equal(t, []string{"record_id", "by", "reason", "answers"}, fields, "seed 004: who, what and why")
}

func TestNewSignOff(t *testing.T) {
	at := time.Date(2025, 3, 2, 10, 0, 0, 0, time.UTC)
	s, err := record.NewSignOff(" r-1 ", " leader-1 ", true, "", at)
	require.NoError(t, err)
	require.Equal(t, record.SignOff{RecordID: "r-1", LeaderID: "leader-1", Approved: true, At: at}, s)
	_, err = record.NewSignOff("", "", false, " ", at)
	e, ok := invalid.As(err)
	require.True(t, ok)
	var fields []string
	for _, v := range e.Violations {
		fields = append(fields, v.Field)
	}
	require.Equal(t, []string{"record_id", "leader_id", "note"}, fields, "a rejection says what is wrong")
}
