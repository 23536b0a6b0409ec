package app

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/feedback/internal/record"
	"github.com/huifang/huifang/services/feedback/internal/review"
	"github.com/huifang/huifang/services/feedback/internal/store"
)

// Sample asks for a sample of an agent's records of a period [Start, End)
// for quality review; a zero Start or End is a missing or invalid one.
type Sample struct {
	Tenant  string
	AgentID string
	Start   time.Time
	End     time.Time
	// Size is review.DefaultSize when 0.
	Size int
}

// Sampled is a sample and the number of records it was drawn from.
type Sampled struct {
	Population int
	Records    []record.Record
}

// SampleForReview draws a reproducible random sample of the records an
// agent logged in a period (seeds 000, 001, 004: supervisors spot-check records).
func (a *App) SampleForReview(ctx context.Context, in Sample) (Sampled, error) {
	tenantID, agent := tenant.Or(in.Tenant), strings.TrimSpace(in.AgentID)
	size, err := review.SampleSize(agent, in.Start, in.End, in.Size)
	if err != nil {
		return Sampled{}, err
	}
	ids, err := store.AgentRecordIDs(ctx, a.DB, tenantID, agent, in.Start, in.End)
	if err != nil {
		return Sampled{}, err
	}
	out := Sampled{Population: len(ids)}
	for _, id := range review.Sample(review.Key(tenantID, agent, in.Start, in.End), ids, size) {
		rec, err := store.GetRecord(ctx, a.DB, tenantID, id)
		if err != nil {
			return Sampled{}, err
		}
		out.Records = append(out.Records, rec)
	}
	return out, nil
}

// SubmitReview asks to score a record against the QA checklist.
type SubmitReview struct {
	Tenant     string
	RecordID   string
	ReviewerID string
	Scores     []review.ItemScore
	Comments   string
}

// SubmitReview stores a review; see SubmitReviewTx.
func (a *App) SubmitReview(ctx context.Context, in SubmitReview) (review.Review, error) {
	return inTx(ctx, a, func(tx pgx.Tx) (review.Review, error) { return a.SubmitReviewTx(ctx, tx, in) })
}

// SubmitReviewTx scores a record against the QA checklist within the
// caller's transaction and writes ReviewSubmitted. No one reviews their own record.
func (a *App) SubmitReviewTx(ctx context.Context, tx pgx.Tx, in SubmitReview) (review.Review, error) {
	r, err := review.New(newID(), tenant.Or(in.Tenant), in.RecordID, in.ReviewerID, in.Scores, in.Comments, a.now())
	if err != nil {
		return review.Review{}, err
	}
	rec, err := store.GetRecord(ctx, tx, r.TenantID, r.RecordID)
	if errors.Is(err, store.ErrNotFound) {
		return review.Review{}, refuse(ErrNotFound, "record %s not found", r.RecordID)
	}
	if err != nil {
		return review.Review{}, err
	}
	if err := r.Of(rec.ID, rec.AgentID); err != nil {
		return review.Review{}, err
	}
	if err := store.InsertReview(ctx, tx, r); err != nil {
		return review.Review{}, err
	}
	return r, publish(ctx, tx, stream.SubjectReviewSubmitted, reviewSubmitted(r, rec.OrgUnit))
}
