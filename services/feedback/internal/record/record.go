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

// Normalize fills the tenant default and trims identifiers in place.
func Normalize(req *feedbackv1.LogVisitRequest) {
	req.TenantId = visit.Tenant(req.TenantId)
	req.VisitId = strings.TrimSpace(req.VisitId)
	req.AgentId = strings.TrimSpace(req.AgentId)
	for _, a := range req.Answers {
		if a != nil {
			a.Aspect = strings.TrimSpace(a.Aspect)
		}
	}
	for _, p := range req.Problems {
		if p != nil {
			p.Category = strings.TrimSpace(p.Category)
			p.Description = strings.TrimSpace(p.Description)
		}
	}
}

// Validate checks a normalized request and returns an *invalid.Error naming
// every field that breaks a rule.
func Validate(req *feedbackv1.LogVisitRequest) error {
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
	seen := map[string]int{}
	for i, a := range req.Answers {
		f := fmt.Sprintf("answers[%d]", i)
		switch {
		case a.GetAspect() == "":
			l.Add(f+".aspect", "is required, e.g. \"overall\" or \"staff_attitude\"")
		case !NamePattern.MatchString(a.GetAspect()):
			l.Add(f+".aspect", "must match "+NamePattern.String())
		default:
			if j, dup := seen[a.GetAspect()]; dup {
				l.Add(f+".aspect", fmt.Sprintf("%q is already rated in answers[%d]; each aspect once", a.GetAspect(), j))
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
	}
	started := checkTime(&l, "started_at", req.StartedAt)
	ended := checkTime(&l, "ended_at", req.EndedAt)
	if !started.IsZero() && !ended.IsZero() && ended.Before(started) {
		l.Add("ended_at", "must not be before started_at")
	}
	return l.Err()
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

// New builds the record of a validated request for v, logged at loggedAt.
// The channel is the visit's planned one when the request names none.
func New(id string, req *feedbackv1.LogVisitRequest, v visit.Visit, loggedAt time.Time) *feedbackv1.VisitRecord {
	ch := req.Channel
	if ch == typesv1.Channel_CHANNEL_UNSPECIFIED {
		ch = v.Channel
	}
	rec := &feedbackv1.VisitRecord{
		Id:         id,
		TenantId:   req.TenantId,
		VisitId:    req.VisitId,
		AgentId:    req.AgentId,
		Channel:    ch,
		Comments:   req.Comments,
		StartedAt:  req.StartedAt,
		EndedAt:    req.EndedAt,
		LoggedAt:   timestamppb.New(loggedAt),
		CustomerId: v.CustomerID,
		OrgUnit:    v.OrgUnit,
	}
	for _, a := range req.Answers {
		rec.Answers = append(rec.Answers, proto.CloneOf(a))
	}
	for _, p := range req.Problems {
		rec.Problems = append(rec.Problems, proto.CloneOf(p))
	}
	return rec
}

// Overall returns the rating of the "overall" answer, RATING_UNSPECIFIED when
// there is none, and that answer's comment.
func Overall(rec *feedbackv1.VisitRecord) (typesv1.Rating, string) {
	for _, a := range rec.Answers {
		if a.GetAspect() == OverallAspect {
			return a.GetRating(), a.GetComment()
		}
	}
	return typesv1.Rating_RATING_UNSPECIFIED, ""
}

// Logged returns the VisitLogged event that reports rec, with the visit's context.
func Logged(eventID string, rec *feedbackv1.VisitRecord, v visit.Visit) *eventsv1.VisitLogged {
	ev := &eventsv1.VisitLogged{
		EventId:     eventID,
		TenantId:    rec.TenantId,
		VisitId:     rec.VisitId,
		RecordId:    rec.Id,
		AgentId:     rec.AgentId,
		Channel:     rec.Channel,
		Comments:    rec.Comments,
		LoggedAt:    rec.LoggedAt,
		OrgUnit:     v.OrgUnit,
		ServiceType: v.ServiceType,
		PolicyId:    v.PolicyID,
		CustomerId:  v.CustomerID,
		ServiceId:   v.ServiceID,
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
	return ev
}
