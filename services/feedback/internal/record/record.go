// Package record holds the rules of a follow-up record (回访记录): what an
// agent must submit (Draft), how a record is built from it and the visit
// it belongs to, how it is corrected by amendments that never change it
// (seed 004) and signed off by a leader (seed 000). It does no I/O.
package record

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

// OverallAspect is the aspect whose rating is the customer's overall
// impression (seed 003 lists "overall impression" among the rated aspects).
const OverallAspect = "overall"

// NamePattern is the pattern of answer aspects, problem categories and attachment kinds.
var NamePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// Limits on what a record carries.
const (
	MaxComments        = 4000
	MaxAttachments     = 20
	MaxPromisedReplies = 10
	MaxProblems        = 50
	MaxNoShowNote      = 500
	// ClockSkew is how far in the future a visit may be said to have ended,
	// or a fact to have happened (occurred_at).
	ClockSkew = 5 * time.Minute
)

// Record is one follow-up as logged; it is never changed (seed 004).
type Record struct {
	ID       string
	TenantID string
	VisitID  string
	AgentID  string
	Channel  typesv1.Channel
	Answers  []questionnaire.Answer
	Problems []Problem
	Comments string
	// StartedAt and EndedAt are zero when not given.
	StartedAt time.Time
	EndedAt   time.Time
	LoggedAt  time.Time
	// OccurredAt is when the visit happened: the draft's OccurredAt, or
	// LoggedAt when the draft gave none (issue 16). The complaints the
	// record opens or settles, and the figures, take this time.
	OccurredAt time.Time
	// CustomerID and OrgUnit come from the visit.
	CustomerID string
	OrgUnit    string
	// QuestionnaireID and QuestionnaireVersion name the version the answers
	// were checked against; "" and 0 for free aspects.
	QuestionnaireID      string
	QuestionnaireVersion int32
	SignatureRef         string
	Attachments          []Attachment
	PromisedReplies      []PromisedReply
	// ConfirmedComplaintID is the complaint a confirmation visit settled.
	ConfirmedComplaintID string
	// ComplaintIDs are the complaints the problems went to, in problem
	// order; AttachedComplaintIDs those of them that were open already.
	ComplaintIDs         []string
	AttachedComplaintIDs []string
	// NoShow is set when the customer the visit invited did not come.
	NoShow *NoShow
}

// NoShow says that a customer invited to come (a maintenance, a recall,
// a booking) did not come, and why (seed 000, auto dealer: for no-shows
// record the reason): a reason of a bounded list, counted by analytics,
// and a note, free text that stays in feedback.
type NoShow struct {
	Reason typesv1.NoShowReason
	Note   string
}

// Problem is a problem the customer raised.
type Problem struct {
	// Category decides the owning department, e.g. "product_quality" (seed 001).
	Category    string
	Description string
	// Severity is the customer's; the category's rule decides when unset.
	Severity typesv1.Severity
	// Anonymous: the complainant left no name (seed 000).
	Anonymous bool
	// WrittenReplyOnly: only a written reply was requested (seed 000).
	WrittenReplyOnly bool
}

// Attachment is a stored file a record refers to, e.g. a call recording.
type Attachment struct {
	Kind string
	Ref  string
}

// PromisedReply is a question the customer asked that could not be
// answered at once, with the time the answer was promised (seed 000).
type PromisedReply struct {
	Question   string
	PromisedAt time.Time
	// Channel of the follow-up; the record's when unset.
	Channel typesv1.Channel
}

// Draft is what an agent submits for a visit (LogVisit).
type Draft struct {
	TenantID string
	VisitID  string
	AgentID  string
	// Channel is the planned channel when unset.
	Channel   typesv1.Channel
	Answers   []questionnaire.Answer
	Problems  []Problem
	Comments  string
	StartedAt time.Time
	EndedAt   time.Time
	// QuestionnaireVersion is the version the agent's form showed; 0: the policy's.
	QuestionnaireVersion int32
	SignatureRef         string
	Attachments          []Attachment
	PromisedReplies      []PromisedReply
	// ComplaintID names the resolved complaint the visit confirms, if the visit does not.
	ComplaintID string
	// OccurredAt is when the visit happened, as the agent or an upstream
	// system states it; zero: now (issue 16).
	OccurredAt time.Time
	// NoShow: the invited customer did not come; answers are then optional.
	NoShow *NoShow
}

// Normalize fills the tenant default and trims identifiers in place.
func Normalize(d *Draft) {
	d.TenantID = tenant.Or(d.TenantID)
	d.VisitID = strings.TrimSpace(d.VisitID)
	d.AgentID = strings.TrimSpace(d.AgentID)
	d.SignatureRef = strings.TrimSpace(d.SignatureRef)
	d.ComplaintID = strings.TrimSpace(d.ComplaintID)
	normalizeAnswers(d.Answers)
	for i := range d.Problems {
		p := &d.Problems[i]
		p.Category = strings.TrimSpace(p.Category)
		p.Description = strings.TrimSpace(p.Description)
	}
	normalizeAttachments(d.Attachments)
	if d.NoShow != nil {
		d.NoShow.Note = strings.TrimSpace(d.NoShow.Note)
	}
	for i := range d.PromisedReplies {
		p := &d.PromisedReplies[i]
		p.Question = strings.TrimSpace(p.Question)
	}
}

func normalizeAnswers(list []questionnaire.Answer) {
	for i := range list {
		a := &list[i]
		a.Aspect = strings.TrimSpace(a.Aspect)
		a.QuestionID = strings.TrimSpace(a.QuestionID)
		a.Choice = strings.TrimSpace(a.Choice)
	}
}

func normalizeAttachments(list []Attachment) {
	for i := range list {
		a := &list[i]
		a.Kind = strings.TrimSpace(a.Kind)
		a.Ref = strings.TrimSpace(a.Ref)
	}
}

// Validate checks what a normalized draft must be whatever its visit and
// questionnaire, and returns an *invalid.Error naming every field that
// breaks a rule. Answers are checked by Complete, against the questionnaire.
func Validate(d Draft, now time.Time) error {
	var l invalid.List
	tenant.Parse(&l, "tenant_id", d.TenantID)
	if d.VisitID == "" {
		l.Add("visit_id", "is required: the visit this record is for")
	}
	if d.AgentID == "" {
		l.Add("agent_id", "is required: the agent who made the visit")
	}
	if _, known := typesv1.Channel_name[int32(d.Channel)]; !known {
		l.Add("channel", fmt.Sprintf("unknown channel %d", d.Channel))
	}
	if len(d.Answers) == 0 && d.NoShow == nil {
		l.Add("answers", "at least one answer is required (none for a no-show)")
	}
	checkNoShow(&l, d.NoShow)
	if len([]rune(d.Comments)) > MaxComments {
		l.Add("comments", fmt.Sprintf("at most %d characters", MaxComments))
	}
	if d.QuestionnaireVersion < 0 {
		l.Add("questionnaire_version", "must not be negative; 0 means the version the policy names")
	}
	if len(d.Problems) > MaxProblems {
		l.Add("problems", fmt.Sprintf("at most %d problems", MaxProblems))
	}
	for i, p := range d.Problems {
		f := fmt.Sprintf("problems[%d]", i)
		switch {
		case p.Category == "":
			l.Add(f+".category", "is required, e.g. \"product_quality\" or \"service_quality\"; it decides the owning department")
		case !NamePattern.MatchString(p.Category):
			l.Add(f+".category", "must match "+NamePattern.String())
		}
		if p.Description == "" {
			l.Add(f+".description", "is required: what the customer raised")
		}
		if _, known := typesv1.Severity_name[int32(p.Severity)]; !known {
			l.Add(f+".severity", fmt.Sprintf("unknown severity %d", p.Severity))
		}
	}
	checkAttachments(&l, "attachments", d.Attachments)
	if len(d.PromisedReplies) > MaxPromisedReplies {
		l.Add("promised_replies", fmt.Sprintf("at most %d promised replies", MaxPromisedReplies))
	}
	for i, p := range d.PromisedReplies {
		f := fmt.Sprintf("promised_replies[%d]", i)
		if p.Question == "" {
			l.Add(f+".question", "is required: what the customer asked that could not be answered at once (seed 000)")
		}
		switch {
		case p.PromisedAt.IsZero():
			l.Add(f+".promised_at", "is required: when the customer was promised the answer (seed 000)")
		case !p.PromisedAt.After(now):
			l.Add(f+".promised_at", "must be in the future")
		}
		if _, known := typesv1.Channel_name[int32(p.Channel)]; !known {
			l.Add(f+".channel", fmt.Sprintf("unknown channel %d", p.Channel))
		}
	}
	started, ended := d.StartedAt, d.EndedAt
	if !started.IsZero() && !ended.IsZero() && ended.Before(started) {
		l.Add("ended_at", "must not be before started_at")
	}
	if !started.IsZero() && started.After(now.Add(ClockSkew)) {
		l.Add("started_at", "must not be in the future")
	}
	if !ended.IsZero() && ended.After(now.Add(ClockSkew)) {
		l.Add("ended_at", "must not be in the future")
	}
	CheckFuture(&l, "occurred_at", d.OccurredAt, now)
	return l.Err()
}

// checkNoShow checks a no-show: a known reason, the note for "other",
// the note's length.
func checkNoShow(l *invalid.List, n *NoShow) {
	if n == nil {
		return
	}
	switch _, known := typesv1.NoShowReason_name[int32(n.Reason)]; {
	case n.Reason == typesv1.NoShowReason_NO_SHOW_REASON_UNSPECIFIED:
		l.Add("no_show.reason", "is required: why the invited customer did not come (seed 000), e.g. NO_SHOW_REASON_SERVICED_ELSEWHERE")
	case !known:
		l.Add("no_show.reason", fmt.Sprintf("unknown reason %d", n.Reason))
	case n.Reason == typesv1.NoShowReason_NO_SHOW_REASON_OTHER && n.Note == "":
		l.Add("no_show.note", "is required with NO_SHOW_REASON_OTHER: say what the reason was")
	}
	if len([]rune(n.Note)) > MaxNoShowNote {
		l.Add("no_show.note", fmt.Sprintf("at most %d characters", MaxNoShowNote))
	}
}

// CheckFuture adds a violation on field when at, a time a caller says
// something happened, is more than ClockSkew after now (issue 16: event
// times are bounded). The zero time (not given) passes.
func CheckFuture(l *invalid.List, field string, at, now time.Time) {
	if !at.IsZero() && at.After(now.Add(ClockSkew)) {
		l.Add(field, fmt.Sprintf("%s is in the future: at most %s after the service's clock (%s)",
			at.UTC().Format(time.RFC3339), ClockSkew, now.UTC().Format(time.RFC3339)))
	}
}

// CheckNotBefore adds a violation on field when at, a time a caller says
// something happened, is before since, the time of what it follows (what
// names it). The zero time (not given) and a zero since pass.
func CheckNotBefore(l *invalid.List, field string, at, since time.Time, what string) {
	if !at.IsZero() && !since.IsZero() && at.Before(since) {
		l.Add(field, fmt.Sprintf("%s is before %s (%s): a fact cannot precede what it follows",
			at.UTC().Format(time.RFC3339), what, since.UTC().Format(time.RFC3339)))
	}
}

func checkAttachments(l *invalid.List, field string, list []Attachment) {
	if len(list) > MaxAttachments {
		l.Add(field, fmt.Sprintf("at most %d attachments", MaxAttachments))
	}
	for i, a := range list {
		f := fmt.Sprintf("%s[%d]", field, i)
		if !NamePattern.MatchString(a.Kind) {
			l.Add(f+".kind", "is required and must match "+NamePattern.String()+", e.g. \"call_recording\"")
		}
		if a.Ref == "" {
			l.Add(f+".ref", "is required: the id of the stored attachment")
		}
	}
}

// Channel returns the channel the visit was made through: the draft's, or
// the visit's planned one when the draft names none.
func Channel(d Draft, v visit.Visit) typesv1.Channel {
	if d.Channel != typesv1.Channel_CHANNEL_UNSPECIFIED {
		return d.Channel
	}
	return v.Channel
}

// Confirmed is the complaint a visit confirms, as far as a record's rules
// need to know it.
type Confirmed struct {
	ComplaintID string
	Severity    string
	// LastStepAt is the time of the latest step of its history: the visit
	// cannot have confirmed it earlier.
	LastStepAt time.Time
}

// Complete checks the answers of a validated draft against q (free
// aspects with 3-level ratings when q is nil) and what depends on the visit:
// only the agent the visit is assigned to logs it (when an assignment is
// known); an on-site visit needs the customer's signature (seed 000); a
// visit that confirms a complaint (confirmed, nil for none) needs the
// overall rating, and one that confirms a major complaint is made on site
// (seed 000); the time the visit happened is not before the visit fell due
// nor, for a confirmation, before the complaint's last step. It returns the answers completed with their question ids
// and aspects.
func Complete(d Draft, v visit.Visit, q *questionnaire.Questionnaire, confirmed *Confirmed) ([]questionnaire.Answer, error) {
	var l invalid.List
	if v.AssignedAgentID != "" && d.AgentID != v.AssignedAgentID {
		l.Add("agent_id", fmt.Sprintf("visit %s is assigned to agent %q, not %q: the agent who holds the visit logs it; reassign the task in dispatch first",
			v.VisitID, v.AssignedAgentID, d.AgentID))
	}
	// A no-show call found out why the customer did not come; it surveyed
	// no service, so the questionnaire's required questions are not asked.
	answers := CheckAnswers(q, d.Answers, &l, "answers", d.NoShow == nil)
	CheckNotBefore(&l, "occurred_at", d.OccurredAt, v.DueAt, "the time visit "+v.VisitID+" fell due")
	if confirmed != nil {
		CheckNotBefore(&l, "occurred_at", d.OccurredAt, confirmed.LastStepAt, "the last step of complaint "+confirmed.ComplaintID)
	}
	channel := Channel(d, v)
	if channel == typesv1.Channel_CHANNEL_ONSITE && d.SignatureRef == "" {
		l.Add("signature_ref", "is required for an on-site visit: the customer signs the record (seed 000); a phone visit needs none")
	}
	if confirmed != nil {
		if r, _ := Overall(answers); r == typesv1.Rating_RATING_UNSPECIFIED {
			l.Add("answers", "a visit that confirms a resolved complaint needs the overall rating: is the customer satisfied now? (seed 004)")
		}
		if confirmed.Severity == MajorSeverity && channel != typesv1.Channel_CHANNEL_ONSITE {
			l.Add("channel", fmt.Sprintf("complaint %s is major (third class): its follow-ups are made on site (CHANNEL_ONSITE, with the customer's signature), not through %s; a phone follow-up is allowed from the second one on only for other complaints (seed 000)",
				confirmed.ComplaintID, channel))
		}
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	return answers, nil
}

// MajorSeverity is the third class of complaint (seed 000: 重点投诉), whose
// follow-ups are never made by phone.
const MajorSeverity = "major"

// CheckAnswers checks answers against q (with complete set, every required
// question must be answered), or, when q is nil, as free aspects each rated
// once on the 3-level scale of seed 003.
func CheckAnswers(q *questionnaire.Questionnaire, answers []questionnaire.Answer, l *invalid.List, prefix string, complete bool) []questionnaire.Answer {
	if q != nil {
		return questionnaire.Check(*q, answers, l, prefix, complete)
	}
	seen := map[string]int{}
	out := make([]questionnaire.Answer, 0, len(answers))
	for i, a := range answers {
		f := fmt.Sprintf("%s[%d]", prefix, i)
		switch {
		case a.Aspect == "":
			l.Add(f+".aspect", "is required, e.g. \"overall\" or \"staff_attitude\"")
		case !NamePattern.MatchString(a.Aspect):
			l.Add(f+".aspect", "must match "+NamePattern.String())
		default:
			if j, dup := seen[a.Aspect]; dup {
				l.Add(f+".aspect", fmt.Sprintf("%q is already rated in %s[%d]; each aspect once", a.Aspect, prefix, j))
			} else {
				seen[a.Aspect] = i
			}
		}
		switch _, known := typesv1.Rating_name[int32(a.Rating)]; {
		case a.Rating == typesv1.Rating_RATING_UNSPECIFIED:
			l.Add(f+".rating", "is required: RATING_SATISFIED, RATING_FAIRLY_SATISFIED or RATING_UNSATISFIED (seed 003)")
		case !known:
			l.Add(f+".rating", fmt.Sprintf("unknown rating %d", a.Rating))
		}
		out = append(out, a)
	}
	return out
}

// New builds the record of a validated draft for v, logged at loggedAt,
// with the completed answers and the questionnaire they were checked
// against; it happened at the draft's OccurredAt, or loggedAt when not given.
func New(id string, d Draft, v visit.Visit, answers []questionnaire.Answer, q *questionnaire.Questionnaire, loggedAt time.Time) Record {
	rec := Record{
		ID:           id,
		TenantID:     d.TenantID,
		VisitID:      d.VisitID,
		AgentID:      d.AgentID,
		Channel:      Channel(d, v),
		Answers:      answers,
		Comments:     d.Comments,
		StartedAt:    d.StartedAt,
		EndedAt:      d.EndedAt,
		LoggedAt:     loggedAt,
		OccurredAt:   loggedAt,
		CustomerID:   v.CustomerID,
		OrgUnit:      v.OrgUnit,
		SignatureRef: d.SignatureRef,
		Problems:     slices.Clone(d.Problems),
		Attachments:  slices.Clone(d.Attachments),
	}
	if !d.OccurredAt.IsZero() {
		rec.OccurredAt = d.OccurredAt.UTC()
	}
	if d.NoShow != nil {
		n := *d.NoShow
		rec.NoShow = &n
	}
	if q != nil {
		rec.QuestionnaireID, rec.QuestionnaireVersion = q.ID, q.Version
	}
	for _, p := range d.PromisedReplies {
		if p.Channel == typesv1.Channel_CHANNEL_UNSPECIFIED {
			p.Channel = rec.Channel
		}
		rec.PromisedReplies = append(rec.PromisedReplies, p)
	}
	return rec
}

// Overall returns the rating of the "overall" answer, RATING_UNSPECIFIED when
// there is none, and that answer's comment.
func Overall(answers []questionnaire.Answer) (typesv1.Rating, string) {
	for _, a := range answers {
		if a.Aspect == OverallAspect {
			return a.Rating, a.Comment
		}
	}
	return typesv1.Rating_RATING_UNSPECIFIED, ""
}
