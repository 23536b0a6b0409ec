package grpcapi

import (
	"context"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"

	"github.com/huifang/huifang/services/feedback/internal/app"
	"github.com/huifang/huifang/services/feedback/internal/wire"
)

// SampleForReview draws a reproducible random sample of the records an
// agent logged in a period.
func (s *Server) SampleForReview(ctx context.Context, req *feedbackv1.SampleForReviewRequest) (*feedbackv1.SampleForReviewResponse, error) {
	sample, err := s.App.SampleForReview(ctx, app.Sample{Tenant: req.GetTenantId(), AgentID: req.GetAgentId(),
		Start: validTime(req.GetPeriodStart()), End: validTime(req.GetPeriodEnd()), Size: int(req.GetSize())})
	if err != nil {
		return nil, statusOf(err)
	}
	return &feedbackv1.SampleForReviewResponse{Population: int32(sample.Population), Records: recordsProto(sample.Records)}, nil
}

// SubmitReview scores a record against the QA checklist and publishes ReviewSubmitted.
func (s *Server) SubmitReview(ctx context.Context, req *feedbackv1.SubmitReviewRequest) (*feedbackv1.SubmitReviewResponse, error) {
	r, err := s.App.SubmitReview(ctx, app.SubmitReview{Tenant: req.GetTenantId(), RecordID: req.GetRecordId(), ReviewerID: req.GetReviewerId(),
		Scores: wire.ScoresFromProto(req.GetScores()), Comments: req.GetComments()})
	if err != nil {
		return nil, statusOf(err)
	}
	return &feedbackv1.SubmitReviewResponse{Review: reviewProto(r)}, nil
}
