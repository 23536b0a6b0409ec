package store

import (
	"context"
	"fmt"

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
