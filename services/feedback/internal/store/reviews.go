package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/feedback/internal/review"
	"github.com/huifang/huifang/services/feedback/internal/wire"
)

// InsertReview stores a QA review.
func InsertReview(ctx context.Context, q postgres.Querier, r review.Review) error {
	scores, err := jsonList(wire.ScoresToProto(r.Scores))
	if err != nil {
		return err
	}
	if _, err := q.Exec(ctx, `INSERT INTO reviews (id, tenant_id, record_id, agent_id, reviewer_id, scores, score, comments, at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, r.ID, r.TenantID, r.RecordID, r.AgentID, r.ReviewerID, scores, r.Score, r.Comments, r.At); err != nil {
		return fmt.Errorf("store: insert review of record %s: %w", r.RecordID, translate(err))
	}
	return nil
}

// ReviewFilter selects reviews for ListReviews; empty fields select any.
type ReviewFilter struct {
	Tenant                      string
	AgentID, RecordID, Reviewer string
	// OrgUnits, when set, keeps the reviews of records of these org units.
	OrgUnits []string
	// From and To bound the review's time: [From, To); zero: open.
	From, To time.Time
	// ScoreBelow keeps the reviews scored below it, when 1 to 100.
	ScoreBelow int32
	// AfterTime and AfterID are the cursor (at, id) of the last review of
	// the previous page; an empty AfterID starts at the newest.
	AfterTime time.Time
	AfterID   string
	Limit     int
}

// ListReviews lists reviews newest first.
func ListReviews(ctx context.Context, q postgres.Querier, f ReviewFilter) ([]review.Review, error) {
	rows, err := q.Query(ctx, `SELECT v.id, v.tenant_id, v.record_id, v.agent_id, v.reviewer_id, v.scores, v.score, v.comments, v.at
FROM reviews v
WHERE v.tenant_id = $1 AND ($3 = '' OR (v.at, v.id) < ($2, $3))
  AND ($5 = '' OR v.agent_id = $5) AND ($6 = '' OR v.record_id = $6) AND ($7 = '' OR v.reviewer_id = $7)
  AND ($8::timestamptz IS NULL OR v.at >= $8) AND ($9::timestamptz IS NULL OR v.at < $9)
  AND ($10 = 0 OR v.score < $10)
  AND ($11::text[] IS NULL OR EXISTS (SELECT 1 FROM visit_records r WHERE r.id = v.record_id AND r.org_unit = ANY($11)))
ORDER BY v.at DESC, v.id DESC LIMIT $4`,
		f.Tenant, f.AfterTime, f.AfterID, f.Limit, f.AgentID, f.RecordID, f.Reviewer, nullTime(f.From), nullTime(f.To), f.ScoreBelow, f.OrgUnits)
	if err != nil {
		return nil, fmt.Errorf("store: list reviews: %w", translate(err))
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (review.Review, error) {
		var v review.Review
		var scores []byte
		if err := r.Scan(&v.ID, &v.TenantID, &v.RecordID, &v.AgentID, &v.ReviewerID, &scores, &v.Score, &v.Comments, &v.At); err != nil {
			return review.Review{}, err
		}
		v.At = v.At.UTC()
		list, err := fromJSONList[*feedbackv1.ChecklistScore](scores)
		v.Scores = wire.ScoresFromProto(list)
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: list reviews: %w", translate(err))
	}
	return list, nil
}
