package record

import (
	"fmt"
	"slices"
	"strings"
	"time"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
)

// Correction is what an amendment changes: replacement answers, new
// comments or signature, added attachments. It is stored with the
// amendment and applied over the record whenever its current form is read.
type Correction struct {
	Answers      []questionnaire.Answer
	Comments     *string
	SignatureRef *string
	Attachments  []Attachment
}

// Amendment is a correction of a record: who made it, why, what it
// changes field by field, and the correction itself.
type Amendment struct {
	ID         string
	RecordID   string
	By         string
	Reason     string
	At         time.Time
	Changes    []FieldChange
	Correction Correction
}

// FieldChange is one field an amendment changed, in words.
type FieldChange struct {
	Field    string
	OldValue string
	NewValue string
}

// AmendDraft is what a correction of a record asks for (AmendVisitRecord).
type AmendDraft struct {
	TenantID string
	RecordID string
	By       string
	Reason   string
	Correction
}

// NormalizeAmend trims the identifiers of d in place.
func NormalizeAmend(d *AmendDraft) {
	d.RecordID = strings.TrimSpace(d.RecordID)
	d.By = strings.TrimSpace(d.By)
	d.Reason = strings.TrimSpace(d.Reason)
	if d.SignatureRef != nil {
		s := strings.TrimSpace(*d.SignatureRef)
		d.SignatureRef = &s
	}
	normalizeAnswers(d.Answers)
	normalizeAttachments(d.Attachments)
}

// ValidateAmend checks what an amendment must carry whatever its record:
// who and why (seed 004: a correction says who changed what and why) and at
// least one change.
func ValidateAmend(d AmendDraft) error {
	var l invalid.List
	if d.RecordID == "" {
		l.Add("record_id", "is required")
	}
	if d.By == "" {
		l.Add("by", "is required: who corrects the record (seed 004)")
	}
	if d.Reason == "" {
		l.Add("reason", "is required: why the record is corrected (seed 004)")
	}
	if len(d.Answers) == 0 && d.Comments == nil && d.SignatureRef == nil && len(d.Attachments) == 0 {
		l.Add("answers", "an amendment changes at least one of answers, comments, signature_ref, attachments")
	}
	if d.Comments != nil && len([]rune(*d.Comments)) > MaxComments {
		l.Add("comments", fmt.Sprintf("at most %d characters", MaxComments))
	}
	checkAttachments(&l, "attachments", d.Attachments)
	return l.Err()
}

// Amend checks d against the record's current form and its questionnaire
// (nil: free aspects) and returns the amendment, with the changes it
// makes, or an *invalid.Error. A correction that changes nothing is refused.
func Amend(id string, current Record, q *questionnaire.Questionnaire, d AmendDraft, at time.Time) (Amendment, error) {
	var l invalid.List
	c := Correction{Comments: d.Comments, SignatureRef: d.SignatureRef, Attachments: slices.Clone(d.Attachments)}
	if len(d.Answers) > 0 {
		c.Answers = CheckAnswers(q, d.Answers, &l, "answers", false)
	}
	if current.Channel == typesv1.Channel_CHANNEL_ONSITE && c.SignatureRef != nil && *c.SignatureRef == "" {
		l.Add("signature_ref", "an on-site record keeps the customer's signature (seed 000)")
	}
	if err := l.Err(); err != nil {
		return Amendment{}, err
	}
	changes := Diff(current, Apply(current, c))
	if len(changes) == 0 {
		return Amendment{}, invalid.New("answers", "the amendment changes nothing in the record's current form")
	}
	return Amendment{ID: id, RecordID: current.ID, By: d.By, Reason: d.Reason, At: at, Changes: changes, Correction: c}, nil
}

// Apply returns rec with c applied; rec is not changed.
func Apply(rec Record, c Correction) Record {
	out := rec
	out.Answers = slices.Clone(rec.Answers)
	for _, a := range c.Answers {
		replaced := false
		for i, old := range out.Answers {
			if answerKey(old) == answerKey(a) {
				out.Answers[i] = a
				replaced = true
				break
			}
		}
		if !replaced {
			out.Answers = append(out.Answers, a)
		}
	}
	if c.Comments != nil {
		out.Comments = *c.Comments
	}
	if c.SignatureRef != nil {
		out.SignatureRef = *c.SignatureRef
	}
	out.Attachments = append(slices.Clone(rec.Attachments), c.Attachments...)
	return out
}

// Current returns rec with every amendment applied, in order.
func Current(rec Record, amendments []Amendment) Record {
	for _, a := range amendments {
		rec = Apply(rec, a.Correction)
	}
	return rec
}

// answerKey identifies the question an answer answers: its question id, or
// its aspect when the record has no questionnaire.
func answerKey(a questionnaire.Answer) string {
	if a.QuestionID != "" {
		return "q:" + a.QuestionID
	}
	return "a:" + a.Aspect
}

// Diff lists the fields that differ between two forms of a record.
func Diff(old, next Record) []FieldChange {
	var out []FieldChange
	add := func(field, o, n string) {
		if o != n {
			out = append(out, FieldChange{Field: field, OldValue: o, NewValue: n})
		}
	}
	prev := map[string]*questionnaire.Answer{}
	for i := range old.Answers {
		prev[answerKey(old.Answers[i])] = &old.Answers[i]
	}
	for _, a := range next.Answers {
		name := a.Aspect
		if a.QuestionID != "" {
			name = a.QuestionID
		}
		add("answers["+name+"]", answerText(prev[answerKey(a)]), answerText(&a))
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
func answerText(a *questionnaire.Answer) string {
	if a == nil {
		return ""
	}
	var parts []string
	if a.Rating != typesv1.Rating_RATING_UNSPECIFIED {
		parts = append(parts, a.Rating.String())
	}
	if a.Score != nil {
		parts = append(parts, fmt.Sprintf("score %d", *a.Score))
	}
	if a.Yes != nil {
		parts = append(parts, map[bool]string{true: "yes", false: "no"}[*a.Yes])
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

// SignOff is a leader's review of a record (seeds 000, 004: the supervisor
// reviews and signs the agents' records); append-only.
type SignOff struct {
	RecordID string
	LeaderID string
	Approved bool
	Note     string
	At       time.Time
}

// NewSignOff checks a leader's review of the record recordID (an id or a
// visit id): the leader is named, and a record not approved says what is wrong.
func NewSignOff(recordID, leaderID string, approved bool, note string, at time.Time) (SignOff, error) {
	s := SignOff{RecordID: strings.TrimSpace(recordID), LeaderID: strings.TrimSpace(leaderID), Approved: approved, Note: strings.TrimSpace(note), At: at}
	var l invalid.List
	if s.RecordID == "" {
		l.Add("record_id", "is required")
	}
	if s.LeaderID == "" {
		l.Add("leader_id", "is required: the leader who reviewed the record (seed 000, seed 004)")
	}
	if !s.Approved && s.Note == "" {
		l.Add("note", "is required when the record is not approved: say what is wrong")
	}
	return s, l.Err()
}
