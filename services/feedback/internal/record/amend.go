package record

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
)

// Correction is what an amendment changes: replacement answers, new
// comments or signature, added attachments. It is stored with the
// amendment and applied over the record whenever its current form is read.
type Correction struct {
	Answers      []*typesv1.Answer
	Comments     *string
	SignatureRef *string
	Attachments  []*feedbackv1.Attachment
}

// NormalizeAmend trims the identifiers of req in place.
func NormalizeAmend(req *feedbackv1.AmendVisitRecordRequest) {
	req.RecordId = strings.TrimSpace(req.RecordId)
	req.By = strings.TrimSpace(req.By)
	req.Reason = strings.TrimSpace(req.Reason)
	if req.SignatureRef != nil {
		s := strings.TrimSpace(*req.SignatureRef)
		req.SignatureRef = &s
	}
	normalizeAnswers(req.Answers)
	normalizeAttachments(req.Attachments)
}

// ValidateAmend checks what an amendment must carry whatever its record:
// who and why (seed 004: a correction says who changed what and why) and at
// least one change.
func ValidateAmend(req *feedbackv1.AmendVisitRecordRequest) error {
	var l invalid.List
	if req.RecordId == "" {
		l.Add("record_id", "is required")
	}
	if req.By == "" {
		l.Add("by", "is required: who corrects the record (seed 004)")
	}
	if req.Reason == "" {
		l.Add("reason", "is required: why the record is corrected (seed 004)")
	}
	if len(req.Answers) == 0 && req.Comments == nil && req.SignatureRef == nil && len(req.Attachments) == 0 {
		l.Add("answers", "an amendment changes at least one of answers, comments, signature_ref, attachments")
	}
	if req.Comments != nil && len([]rune(*req.Comments)) > MaxComments {
		l.Add("comments", fmt.Sprintf("at most %d characters", MaxComments))
	}
	checkAttachments(&l, "attachments", req.Attachments)
	return l.Err()
}

// Amend checks req against the record's current form and its questionnaire
// (nil: free aspects) and returns the correction and the changes it makes,
// or an *invalid.Error. A correction that changes nothing is refused.
func Amend(current *feedbackv1.VisitRecord, q *feedbackv1.Questionnaire, req *feedbackv1.AmendVisitRecordRequest) (Correction, []*feedbackv1.FieldChange, error) {
	var l invalid.List
	c := Correction{Comments: req.Comments, SignatureRef: req.SignatureRef}
	if len(req.Answers) > 0 {
		c.Answers = CheckAnswers(q, req.Answers, &l, "answers", false)
	}
	for _, a := range req.Attachments {
		c.Attachments = append(c.Attachments, proto.CloneOf(a))
	}
	if current.Channel == typesv1.Channel_CHANNEL_ONSITE && c.SignatureRef != nil && *c.SignatureRef == "" {
		l.Add("signature_ref", "an on-site record keeps the customer's signature (seed 000)")
	}
	if err := l.Err(); err != nil {
		return Correction{}, nil, err
	}
	next := Apply(current, c)
	changes := Diff(current, next)
	if len(changes) == 0 {
		return Correction{}, nil, invalid.New("answers", "the amendment changes nothing in the record's current form")
	}
	return c, changes, nil
}

// Apply returns rec with c applied; rec is not changed.
func Apply(rec *feedbackv1.VisitRecord, c Correction) *feedbackv1.VisitRecord {
	out := proto.CloneOf(rec)
	for _, a := range c.Answers {
		replaced := false
		for i, old := range out.Answers {
			if answerKey(old) == answerKey(a) {
				out.Answers[i] = proto.CloneOf(a)
				replaced = true
				break
			}
		}
		if !replaced {
			out.Answers = append(out.Answers, proto.CloneOf(a))
		}
	}
	if c.Comments != nil {
		out.Comments = *c.Comments
	}
	if c.SignatureRef != nil {
		out.SignatureRef = *c.SignatureRef
	}
	for _, a := range c.Attachments {
		out.Attachments = append(out.Attachments, proto.CloneOf(a))
	}
	return out
}

// answerKey identifies the question an answer answers: its question id, or
// its aspect when the record has no questionnaire.
func answerKey(a *typesv1.Answer) string {
	if a.QuestionId != "" {
		return "q:" + a.QuestionId
	}
	return "a:" + a.Aspect
}

// Diff lists the fields that differ between two forms of a record.
func Diff(old, next *feedbackv1.VisitRecord) []*feedbackv1.FieldChange {
	var out []*feedbackv1.FieldChange
	add := func(field, o, n string) {
		if o != n {
			out = append(out, &feedbackv1.FieldChange{Field: field, OldValue: o, NewValue: n})
		}
	}
	prev := map[string]*typesv1.Answer{}
	for _, a := range old.Answers {
		prev[answerKey(a)] = a
	}
	for _, a := range next.Answers {
		name := a.Aspect
		if a.QuestionId != "" {
			name = a.QuestionId
		}
		add("answers["+name+"]", answerText(prev[answerKey(a)]), answerText(a))
	}
	add("comments", old.Comments, next.Comments)
	add("signature_ref", old.SignatureRef, next.SignatureRef)
	if len(next.Attachments) > len(old.Attachments) {
		for _, a := range next.Attachments[len(old.Attachments):] {
			add("attachments", "", a.Kind+":"+a.Ref)
		}
	}
	return out
}

// answerText is an answer's value in words, "" for none, e.g.
// "RATING_UNSATISFIED; comment: late".
func answerText(a *typesv1.Answer) string {
	if a == nil {
		return ""
	}
	var parts []string
	if a.Rating != typesv1.Rating_RATING_UNSPECIFIED {
		parts = append(parts, a.Rating.String())
	}
	if a.Score != nil {
		parts = append(parts, fmt.Sprintf("score %d", a.GetScore()))
	}
	if a.Yes != nil {
		parts = append(parts, map[bool]string{true: "yes", false: "no"}[a.GetYes()])
	}
	if a.Choice != "" {
		parts = append(parts, "choice "+a.Choice)
	}
	if a.Text != "" {
		parts = append(parts, "text: "+a.Text)
	}
	if a.Comment != "" {
		parts = append(parts, "comment: "+a.Comment)
	}
	return strings.Join(parts, "; ")
}

// NewAmendment describes an amendment for the API.
func NewAmendment(id, recordID string, req *feedbackv1.AmendVisitRecordRequest, changes []*feedbackv1.FieldChange, at time.Time) *feedbackv1.Amendment {
	return &feedbackv1.Amendment{Id: id, RecordId: recordID, By: req.By, Reason: req.Reason, At: timestamppb.New(at), Changes: changes}
}
