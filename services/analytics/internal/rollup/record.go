package rollup

import (
	"fmt"
	"strings"
	"time"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/enum"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/analytics/internal/satisfaction"
)

// CheckVisitLogged refuses a VisitLogged without visit_id or logged_at, or
// with an occurred_at that is not a valid timestamp, or
// with a rated answer whose aspect or rating is malformed, or an NPS answer
// outside 0–10, with an *invalid.Error naming the field, so no part of it
// is counted.
func CheckVisitLogged(ev *eventsv1.VisitLogged) error {
	var bad invalid.List
	if strings.TrimSpace(ev.GetVisitId()) == "" {
		bad.Add("visit_id", "is required")
	}
	if ev.GetLoggedAt() == nil {
		bad.Add("logged_at", "is required")
	} else if err := ev.GetLoggedAt().CheckValid(); err != nil {
		bad.Add("logged_at", "must be a valid timestamp")
	}
	if ev.GetOccurredAt() != nil && ev.GetOccurredAt().CheckValid() != nil {
		bad.Add("occurred_at", "must be a valid timestamp when set")
	}
	for i, a := range ev.GetAnswers() {
		if a.GetRating() == typesv1.Rating_RATING_UNSPECIFIED {
			continue
		}
		if _, ok := voteMetric(a.GetRating()); !ok {
			bad.Add(fmt.Sprintf("answers[%d].rating", i), "must be satisfied, fairly satisfied or unsatisfied")
			continue
		}
		if !satisfaction.ValidAspect(aspectOf(a)) {
			bad.Add(fmt.Sprintf("answers[%d].aspect", i), satisfaction.AspectRule)
		}
	}
	if ev.Nps != nil && (ev.GetNps() < 0 || ev.GetNps() > 10) {
		bad.Add("nps", "must be from 0 to 10")
	}
	return bad.Err()
}

func aspectOf(a *typesv1.Answer) string { return strings.ToLower(strings.TrimSpace(a.GetAspect())) }

// Happened returns when the visit of a VisitLogged happened: its
// occurred_at (the time the agent or an upstream system stated, issue 16),
// else its logged_at (events of feedback before occurred_at existed).
// Analytics counts a record on this day and measures its timeliness by it.
func Happened(ev *eventsv1.VisitLogged) time.Time {
	if at := ts(ev.GetOccurredAt()); !at.IsZero() {
		return at
	}
	return ts(ev.GetLoggedAt())
}

// FromVisitLogged returns what one logged record adds on the UTC day the
// visit happened (Happened): record.logged once; record.returned once when it rates anything
// (seed 003: a questionnaire returned); one vote per rated aspect (seed 003:
// A satisfied, B fairly satisfied, C unsatisfied) in the bucket of its
// aspect; the NPS answer as promoter (9–10), passive (7–8) or detractor
// (0–6); one problem per raised problem in the bucket of its category; a
// no-show (seed 000) in the bucket of its reason.
// Answers without a rating add nothing. A questionnaire has one vote per
// item, so two rated answers on one aspect are one vote, the less
// favourable (an item's votes never outnumber the questionnaires returned).
// The event must have passed CheckVisitLogged.
func FromVisitLogged(ev *eventsv1.VisitLogged, productCategory string) []Delta {
	dims := Dims{
		OrgUnit:         strings.TrimSpace(ev.GetOrgUnit()),
		PolicyID:        strings.TrimSpace(ev.GetPolicyId()),
		ServiceType:     strings.TrimSpace(ev.GetServiceType()),
		ProductCategory: productCategory,
		Channel:         channel(ev.GetChannel()),
		AgentID:         strings.TrimSpace(ev.GetAgentId()),
	}
	key := func(metric string, d Dims) Key {
		return Key{Tenant: tenant.Of(ev), Metric: metric, Day: Day(Happened(ev)), Dims: d}
	}
	out := []Delta{{Key: key(MetricLogged, dims), N: 1}}
	vote := map[string]typesv1.Rating{}
	var aspects []string
	for _, a := range ev.GetAnswers() {
		r := a.GetRating()
		if _, ok := voteMetric(r); !ok {
			continue
		}
		asp := aspectOf(a)
		prev, seen := vote[asp]
		if !seen {
			aspects = append(aspects, asp)
		}
		if !seen || r > prev { // the enum runs satisfied, fairly satisfied, unsatisfied
			vote[asp] = r
		}
	}
	if len(aspects) > 0 {
		out = append(out, Delta{Key: key(MetricRecordReturned, dims), N: 1})
	}
	for _, asp := range aspects {
		m, _ := voteMetric(vote[asp])
		d := dims
		d.Aspect = asp
		out = append(out, Delta{Key: key(m, d), N: 1})
	}
	if ev.Nps != nil {
		m := MetricNPSDetractor
		switch {
		case ev.GetNps() >= 9:
			m = MetricNPSPromoter
		case ev.GetNps() >= 7:
			m = MetricNPSPassive
		}
		out = append(out, Delta{Key: key(m, dims), N: 1})
	}
	if r := ev.GetNoShowReason(); r != typesv1.NoShowReason_NO_SHOW_REASON_UNSPECIFIED {
		d := dims
		d.Category = enum.Name(r)
		out = append(out, Delta{Key: key(MetricNoShow, d), N: 1})
	}
	for _, p := range ev.GetProblems() {
		d := dims
		d.Category = strings.ToLower(strings.TrimSpace(p.GetCategory()))
		if d.Category == "" {
			d.Category = "other"
		}
		out = append(out, Delta{Key: key(MetricProblem, d), N: 1})
	}
	return Merge(out)
}

func voteMetric(r typesv1.Rating) (string, bool) {
	switch r {
	case typesv1.Rating_RATING_SATISFIED:
		return MetricVoteSatisfied, true
	case typesv1.Rating_RATING_FAIRLY_SATISFIED:
		return MetricVoteFairly, true
	case typesv1.Rating_RATING_UNSATISFIED:
		return MetricVoteUnsatisfied, true
	}
	return "", false
}

// FromReview returns what a QA review adds on its day: one review with its score as total.
func FromReview(ev *eventsv1.ReviewSubmitted) ([]Delta, error) {
	var bad invalid.List
	if ev.GetReviewId() == "" {
		bad.Add("review_id", "is required")
	}
	if ts(ev.GetAt()).IsZero() {
		bad.Add("at", "is required")
	}
	if ev.GetScore() < 0 || ev.GetScore() > 100 {
		bad.Add("score", "must be from 0 to 100")
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	return []Delta{{Key: Key{Tenant: tenant.Of(ev), Metric: MetricReview, Day: Day(ts(ev.GetAt())),
		Dims: Dims{OrgUnit: strings.TrimSpace(ev.GetOrgUnit()), AgentID: strings.TrimSpace(ev.GetAgentId())}}, N: 1, Total: int64(ev.GetScore())}}, nil
}
