package grpcapi

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/review"
	"github.com/huifang/huifang/services/feedback/internal/store"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

// SampleForReview draws a reproducible random sample of the records an
// agent logged in a period.
func (s *Server) SampleForReview(ctx context.Context, req *feedbackv1.SampleForReviewRequest) (*feedbackv1.SampleForReviewResponse, error) {
	tenant, agent := visit.Tenant(req.GetTenantId()), strings.TrimSpace(req.GetAgentId())
	var l invalid.List
	if agent == "" {
		l.Add("agent_id", "is required")
	}
	if req.GetPeriodStart() == nil || req.GetPeriodStart().CheckValid() != nil {
		l.Add("period_start", "is required: a valid timestamp")
	}
	if req.GetPeriodEnd() == nil || req.GetPeriodEnd().CheckValid() != nil {
		l.Add("period_end", "is required: a valid timestamp")
	} else if req.GetPeriodStart() != nil && !req.GetPeriodEnd().AsTime().After(req.GetPeriodStart().AsTime()) {
		l.Add("period_end", "must be after period_start")
	}
	size := int(req.GetSize())
	if size == 0 {
		size = review.DefaultSize
	}
	if size < 0 || size > review.MaxSize {
		l.Add("size", "must be 0 (3) to 100")
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	start, end := req.GetPeriodStart().AsTime(), req.GetPeriodEnd().AsTime()
	ids, err := store.AgentRecordIDs(ctx, s.Store.Pool, tenant, agent, start, end)
	if err != nil {
		return nil, err
	}
	resp := &feedbackv1.SampleForReviewResponse{Population: int32(len(ids))}
	for _, id := range review.Sample(review.Key(tenant, agent, start, end), ids, size) {
		rec, err := s.Store.GetRecord(ctx, tenant, id)
		if err != nil {
			return nil, err
		}
		resp.Records = append(resp.Records, rec)
	}
	return resp, nil
}

// SubmitReview scores a record against the QA checklist and publishes ReviewSubmitted.
func (s *Server) SubmitReview(ctx context.Context, req *feedbackv1.SubmitReviewRequest) (*feedbackv1.SubmitReviewResponse, error) {
	r := &feedbackv1.Review{
		Id: outbox.NewEventID(), TenantId: visit.Tenant(req.GetTenantId()), RecordId: strings.TrimSpace(req.GetRecordId()),
		ReviewerId: strings.TrimSpace(req.GetReviewerId()), Scores: req.GetScores(), Comments: strings.TrimSpace(req.GetComments()),
		At: timestamppb.New(s.Now()),
	}
	var l invalid.List
	if r.RecordId == "" {
		l.Add("record_id", "is required")
	}
	if r.ReviewerId == "" {
		l.Add("reviewer_id", "is required")
	}
	score, err := review.Score(r.Scores)
	if bad, ok := invalid.As(err); ok {
		for _, v := range bad.Violations {
			l.Add(v.Field, v.Rule)
		}
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	for _, sc := range r.Scores {
		sc.Item = strings.TrimSpace(sc.Item)
	}
	r.Score = score
	err = pgx.BeginFunc(ctx, s.Store.Pool, func(tx pgx.Tx) error {
		rec, err := store.GetRecord(ctx, tx, r.TenantId, r.RecordId, false)
		if err != nil {
			return err
		}
		if rec.AgentId == r.ReviewerId {
			return invalid.New("reviewer_id", "an agent does not review their own record")
		}
		r.RecordId, r.AgentId = rec.Id, rec.AgentId
		if err := store.InsertReview(ctx, tx, r); err != nil {
			return err
		}
		ev := &eventsv1.ReviewSubmitted{EventId: outbox.NewEventID(), TenantId: r.TenantId, ReviewId: r.Id, RecordId: r.RecordId,
			AgentId: r.AgentId, ReviewerId: r.ReviewerId, Score: r.Score, At: r.At, OrgUnit: rec.OrgUnit}
		return store.Publish(ctx, tx, stream.SubjectReviewSubmitted, ev.EventId, ev)
	})
	if err != nil {
		return nil, statusOf(err, "record "+r.RecordId)
	}
	s.Relay.Notify()
	return &feedbackv1.SubmitReviewResponse{Review: r}, nil
}
