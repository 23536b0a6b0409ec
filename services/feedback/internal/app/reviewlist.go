package app

import (
	"context"
	"strings"
	"time"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/feedback/internal/review"
	"github.com/huifang/huifang/services/feedback/internal/store"
)

// ReviewList selects QA reviews for ListReviews.
type ReviewList struct {
	Tenant                        string
	AgentID, RecordID, ReviewerID string
	// From and To bound the review's time, [From, To); zero: open.
	From, To time.Time
	// ScoreBelow keeps reviews scored below it (1 to 100); 0: any.
	ScoreBelow int32
	// AfterTime and AfterID are the cursor: the reviews made before
	// (AfterTime, AfterID), newest first; an empty AfterID starts at the newest.
	AfterTime time.Time
	AfterID   string
	Limit     int
}

// ListReviews lists QA reviews newest first (seeds 000, 001, 004: spot
// checks of records), held to the caller: a QA reviewer or a director sees
// the tenant's, a leader those of the records of the org units it leads,
// an agent its own.
func (a *App) ListReviews(ctx context.Context, in ReviewList) ([]review.Review, error) {
	f := store.ReviewFilter{Tenant: tenant.Or(in.Tenant), AgentID: strings.TrimSpace(in.AgentID), RecordID: strings.TrimSpace(in.RecordID),
		Reviewer: strings.TrimSpace(in.ReviewerID), From: in.From, To: in.To, ScoreBelow: in.ScoreBelow,
		AfterTime: in.AfterTime, AfterID: in.AfterID, Limit: in.Limit}
	// score_below is 0 (any score) to 100: feedback.proto's rule.
	var l invalid.List
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		l.Add("to", "must be after from")
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	if p, ok := auth.Restricted(ctx, auth.QAReviewer, auth.Director); ok {
		switch {
		case p.Has(auth.Leader) && len(p.OrgUnits) == 0:
			return nil, auth.Deny("agent_id", "a leader lists the reviews of the org units its token names, and it names none")
		case p.Has(auth.Leader):
			f.OrgUnits = p.OrgUnits
		case f.AgentID != p.AgentID:
			return nil, auth.Deny("agent_id", "an agent lists its own reviews")
		}
	}
	return store.ListReviews(ctx, a.DB, f)
}
