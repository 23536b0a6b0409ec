// Package record holds the rules of a follow-up record: what a LogVisit
// request must carry, how a record is built from it and the visit it
// belongs to, and the VisitLogged event that reports it. It does no I/O.
package record

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

// OverallAspect is the aspect whose rating is the customer's overall
// impression (seed 003 lists "overall impression" among the rated aspects).
const OverallAspect = "overall"

var (
	// NamePattern is the pattern of answer aspects and problem categories.
	NamePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	tenantRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
)

// Limits on what a record carries.
const (
	MaxComments        = 4000
	MaxAttachments     = 20
	MaxPromisedReplies = 10
	MaxProblems        = 50
	// ClockSkew is how far in the future a visit may be said to have ended.
	ClockSkew = 5 * time.Minute
)

// Normalize fills the tenant default and trims identifiers in place.
func Normalize(req *feedbackv1.LogVisitRequest) {
	req.TenantId = visit.Tenant(req.TenantId)
	req.VisitId = strings.TrimSpace(req.VisitId)
	req.AgentId = strings.TrimSpace(req.AgentId)
	req.SignatureRef = strings.TrimSpace(req.SignatureRef)
	req.ComplaintId = strings.TrimSpace(req.ComplaintId)
	normalizeAnswers(req.Answers)
	for _, p := range req.Problems {
		if p != nil {
			p.Category = strings.TrimSpace(p.Category)
			p.Description = strings.TrimSpace(p.Description)
		}
	}
	normalizeAttachments(req.Attachments)
	for _, p := range req.PromisedReplies {
		if p != nil {
			p.Question = strings.TrimSpace(p.Question)
		}
	}
}

func normalizeAnswers(list []*typesv1.Answer) {
	for _, a := range list {
		if a != nil {
			a.Aspect = strings.TrimSpace(a.Aspect)
			a.QuestionId = strings.TrimSpace(a.QuestionId)
			a.Choice = strings.TrimSpace(a.Choice)
		}
	}
}

func normalizeAttachments(list []*feedbackv1.Attachment) {
	for _, a := range list {
		if a != nil {
			a.Kind = strings.TrimSpace(a.Kind)
			a.Ref = strings.TrimSpace(a.Ref)
		}
	}
}

// Validate checks what a normalized request must be whatever its visit and
// questionnaire, and returns an *invalid.Error naming every field that
// breaks a rule. Answers are checked by Complete, against the questionnaire.
func Validate(req *feedbackv1.LogVisitRequest, now time.Time) error {
	var l invalid.List
	if !tenantRE.MatchString(req.TenantId) {
		l.Add("tenant_id", "must be 1–63 lowercase letters, digits, '-' or '_'")
	}
	if req.VisitId == "" {
		l.Add("visit_id", "is required: the visit this record is for")
	}
	if req.AgentId == "" {
		l.Add("agent_id", "is required: the agent who made the visit")
	}
	if _, known := typesv1.Channel_name[int32(req.Channel)]; !known {
		l.Add("channel", fmt.Sprintf("unknown channel %d", req.Channel))
	}
	if len(req.Answers) == 0 {
		l.Add("answers", "at least one answer is required")
	}
	if len([]rune(req.Comments)) > MaxComments {
		l.Add("comments", fmt.Sprintf("at most %d characters", MaxComments))
	}
	if req.QuestionnaireVersion < 0 {
		l.Add("questionnaire_version", "must not be negative; 0 means the version the policy names")
	}
	if len(req.Problems) > MaxProblems {
		l.Add("problems", fmt.Sprintf("at most %d problems", MaxProblems))
	}
	for i, p := range req.Problems {
		f := fmt.Sprintf("problems[%d]", i)
		switch {
		case p.GetCategory() == "":
			l.Add(f+".category", "is required, e.g. \"product_quality\" or \"service_quality\"; it decides the owning department")
		case !NamePattern.MatchString(p.GetCategory()):
			l.Add(f+".category", "must match "+NamePattern.String())
		}
		if p.GetDescription() == "" {
			l.Add(f+".description", "is required: what the customer raised")
		}
		if _, known := typesv1.Severity_name[int32(p.GetSeverity())]; !known {
			l.Add(f+".severity", fmt.Sprintf("unknown severity %d", p.GetSeverity()))
		}
	}
	checkAttachments(&l, "attachments", req.Attachments)
	if len(req.PromisedReplies) > MaxPromisedReplies {
		l.Add("promised_replies", fmt.Sprintf("at most %d promised replies", MaxPromisedReplies))
	}
	for i, p := range req.PromisedReplies {
		f := fmt.Sprintf("promised_replies[%d]", i)
		if p.GetQuestion() == "" {
			l.Add(f+".question", "is required: what the customer asked that could not be answered at once (seed 000)")
		}
		switch at := checkTime(&l, f+".promised_at", p.GetPromisedAt()); {
		case p.GetPromisedAt() == nil:
			l.Add(f+".promised_at", "is required: when the customer was promised the answer (seed 000)")
		case !at.IsZero() && !at.After(now):
			l.Add(f+".promised_at", "must be in the future")
		}
		if _, known := typesv1.Channel_name[int32(p.GetChannel())]; !known {
			l.Add(f+".channel", fmt.Sprintf("unknown channel %d", p.GetChannel()))
		}
	}
	started := checkTime(&l, "started_at", req.StartedAt)
	ended := checkTime(&l, "ended_at", req.EndedAt)
	if !started.IsZero() && !ended.IsZero() && ended.Before(started) {
		l.Add("ended_at", "must not be before started_at")
	}
	if !started.IsZero() && started.After(now.Add(ClockSkew)) {
		l.Add("started_at", "must not be in the future")
	}
	if !ended.IsZero() && ended.After(now.Add(ClockSkew)) {
		l.Add("ended_at", "must not be in the future")
	}
	return l.Err()
}

func checkAttachments(l *invalid.List, field string, list []*feedbackv1.Attachment) {
	if len(list) > MaxAttachments {
		l.Add(field, fmt.Sprintf("at most %d attachments", MaxAttachments))
	}
	for i, a := range list {
		f := fmt.Sprintf("%s[%d]", field, i)
		if !NamePattern.MatchString(a.GetKind()) {
			l.Add(f+".kind", "is required and must match "+NamePattern.String()+", e.g. \"call_recording\"")
		}
		if a.GetRef() == "" {
			l.Add(f+".ref", "is required: the id of the stored attachment")
		}
	}
}

// Channel returns the channel the visit was made through: the request's, or
// the visit's planned one when the request names none.
func Channel(req *feedbackv1.LogVisitRequest, v visit.Visit) typesv1.Channel {
	if req.Channel != typesv1.Channel_CHANNEL_UNSPECIFIED {
		return req.Channel
	}
	return v.Channel
}

// Complete checks the answers of a validated request against q (free
// aspects with 3-level ratings when q is nil) and what depends on the visit:
// only the agent the visit is assigned to logs it (when an assignment is
// known); an on-site visit needs the customer's signature (seed 000); a
// visit that confirms a complaint (confirmed, nil for none) needs the
// overall rating, and one that confirms a major complaint is made on site
// (seed 000). It returns the answers completed with their question ids
// and aspects.
func Complete(req *feedbackv1.LogVisitRequest, v visit.Visit, q *feedbackv1.Questionnaire, confirmed *feedbackv1.Complaint) ([]*typesv1.Answer, error) {
	var l invalid.List
	if v.AssignedAgentID != "" && req.AgentId != v.AssignedAgentID {
		l.Add("agent_id", fmt.Sprintf("visit %s is assigned to agent %q, not %q: the agent who holds the visit logs it; reassign the task in dispatch first",
			v.VisitID, v.AssignedAgentID, req.AgentId))
	}
	answers := CheckAnswers(q, req.Answers, &l, "answers", true)
	channel := Channel(req, v)
	if channel == typesv1.Channel_CHANNEL_ONSITE && req.SignatureRef == "" {
		l.Add("signature_ref", "is required for an on-site visit: the customer signs the record (seed 000); a phone visit needs none")
	}
	if confirmed != nil {
		if r, _ := overallOf(answers); r == typesv1.Rating_RATING_UNSPECIFIED {
			l.Add("answers", "a visit that confirms a resolved complaint needs the overall rating: is the customer satisfied now? (seed 004)")
		}
		if confirmed.Severity == MajorSeverity && channel != typesv1.Channel_CHANNEL_ONSITE {
			l.Add("channel", fmt.Sprintf("complaint %s is major (third class): its follow-ups are made on site (CHANNEL_ONSITE, with the customer's signature), not through %s; a phone follow-up is allowed from the second one on only for other complaints (seed 000)",
				confirmed.Id, channel))
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
func CheckAnswers(q *feedbackv1.Questionnaire, answers []*typesv1.Answer, l *invalid.List, prefix string, complete bool) []*typesv1.Answer {
	if q != nil {
		return questionnaire.Check(q, answers, l, prefix, complete)
	}
	seen := map[string]int{}
	out := make([]*typesv1.Answer, 0, len(answers))
	for i, a := range answers {
		f := fmt.Sprintf("%s[%d]", prefix, i)
		switch {
		case a.GetAspect() == "":
			l.Add(f+".aspect", "is required, e.g. \"overall\" or \"staff_attitude\"")
		case !NamePattern.MatchString(a.GetAspect()):
			l.Add(f+".aspect", "must match "+NamePattern.String())
		default:
			if j, dup := seen[a.GetAspect()]; dup {
				l.Add(f+".aspect", fmt.Sprintf("%q is already rated in %s[%d]; each aspect once", a.GetAspect(), prefix, j))
			} else {
				seen[a.GetAspect()] = i
			}
		}
		switch _, known := typesv1.Rating_name[int32(a.GetRating())]; {
		case a.GetRating() == typesv1.Rating_RATING_UNSPECIFIED:
			l.Add(f+".rating", "is required: RATING_SATISFIED, RATING_FAIRLY_SATISFIED or RATING_UNSATISFIED (seed 003)")
		case !known:
			l.Add(f+".rating", fmt.Sprintf("unknown rating %d", a.GetRating()))
		}
		if a != nil {
			out = append(out, proto.CloneOf(a))
		}
	}
	return out
}

func checkTime(l *invalid.List, field string, ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	if err := ts.CheckValid(); err != nil {
		l.Add(field, "must be a valid timestamp")
		return time.Time{}
	}
	return ts.AsTime()
}

// New builds the record of a validated request for v, logged at loggedAt,
// with the completed answers and the questionnaire they were checked against.
func New(id string, req *feedbackv1.LogVisitRequest, v visit.Visit, answers []*typesv1.Answer, q *feedbackv1.Questionnaire, loggedAt time.Time) *feedbackv1.VisitRecord {
	rec := &feedbackv1.VisitRecord{
		Id:           id,
		TenantId:     req.TenantId,
		VisitId:      req.VisitId,
		AgentId:      req.AgentId,
		Channel:      Channel(req, v),
		Answers:      answers,
		Comments:     req.Comments,
		StartedAt:    req.StartedAt,
		EndedAt:      req.EndedAt,
		LoggedAt:     timestamppb.New(loggedAt),
		CustomerId:   v.CustomerID,
		OrgUnit:      v.OrgUnit,
		SignatureRef: req.SignatureRef,
	}
	if q != nil {
		rec.QuestionnaireId, rec.QuestionnaireVersion = q.Id, q.Version
	}
	for _, p := range req.Problems {
		rec.Problems = append(rec.Problems, proto.CloneOf(p))
	}
	for _, a := range req.Attachments {
		rec.Attachments = append(rec.Attachments, proto.CloneOf(a))
	}
	for _, p := range req.PromisedReplies {
		p := proto.CloneOf(p)
		if p.Channel == typesv1.Channel_CHANNEL_UNSPECIFIED {
			p.Channel = rec.Channel
		}
		rec.PromisedReplies = append(rec.PromisedReplies, p)
	}
	return rec
}

// Overall returns the rating of the "overall" answer, RATING_UNSPECIFIED when
// there is none, and that answer's comment.
func Overall(rec *feedbackv1.VisitRecord) (typesv1.Rating, string) {
	return overallOf(rec.Answers)
}

func overallOf(answers []*typesv1.Answer) (typesv1.Rating, string) {
	for _, a := range answers {
		if a.GetAspect() == OverallAspect {
			return a.GetRating(), a.GetComment()
		}
	}
	return typesv1.Rating_RATING_UNSPECIFIED, ""
}

// Logged returns the VisitLogged event that reports rec, with the visit's context.
func Logged(eventID string, rec *feedbackv1.VisitRecord, v visit.Visit, q *feedbackv1.Questionnaire) *eventsv1.VisitLogged {
	ev := &eventsv1.VisitLogged{
		QuestionnaireId:      rec.QuestionnaireId,
		QuestionnaireVersion: rec.QuestionnaireVersion,
		Nps:                  questionnaire.NPS(q, rec.Answers),
		EventId:              eventID,
		TenantId:             rec.TenantId,
		VisitId:              rec.VisitId,
		RecordId:             rec.Id,
		AgentId:              rec.AgentId,
		Channel:              rec.Channel,
		Comments:             rec.Comments,
		LoggedAt:             rec.LoggedAt,
		OrgUnit:              v.OrgUnit,
		ServiceType:          v.ServiceType,
		PolicyId:             v.PolicyID,
		CustomerId:           v.CustomerID,
		ServiceId:            v.ServiceID,
	}
	for _, a := range rec.Answers {
		ev.Answers = append(ev.Answers, proto.CloneOf(a))
	}
	for _, p := range rec.Problems {
		ev.Problems = append(ev.Problems, proto.CloneOf(p))
	}
	if !v.DueAt.IsZero() {
		ev.DueAt = timestamppb.New(v.DueAt)
	}
	if !v.Deadline.IsZero() {
		ev.Deadline = timestamppb.New(v.Deadline)
	}
	if !v.ServiceCompletedAt.IsZero() {
		ev.ServiceCompletedAt = timestamppb.New(v.ServiceCompletedAt)
	}
	return ev
}
