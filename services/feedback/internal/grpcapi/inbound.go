package grpcapi

import (
	"context"
	"time"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"

	"github.com/huifang/huifang/pkg/enum"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/page"
	"github.com/huifang/huifang/services/feedback/internal/app"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/review"
)

// CreateComplaint records an inbound complaint (app.CreateComplaintTx).
func (s *Server) CreateComplaint(ctx context.Context, req *feedbackv1.CreateComplaintRequest) (*feedbackv1.CreateComplaintResponse, error) {
	var l invalid.List
	at := timeOf(&l, "received_at", req.GetReceivedAt())
	if err := l.Err(); err != nil {
		return nil, statusOf(err)
	}
	d := complaint.InboundDraft{TenantID: req.GetTenantId(), RequestID: req.GetRequestId(), CustomerID: req.GetCustomerId(),
		ServiceID: req.GetServiceId(), VisitID: req.GetVisitId(), OrgUnit: req.GetOrgUnit(), Category: req.GetCategory(),
		Description: req.GetDescription(), ReceivedAt: at, Anonymous: req.GetAnonymous(), WrittenReplyOnly: req.GetWrittenReplyOnly()}
	// Names the domain checks: "" for unspecified, the number for a value out of range.
	d.Severity, d.ReceivedVia = enum.Name(req.GetSeverity()), enum.Name(req.GetReceivedVia())
	in, err := s.App.CreateComplaint(ctx, d)
	if err != nil {
		return nil, statusOf(err)
	}
	return &feedbackv1.CreateComplaintResponse{Complaint: complaintProto(in.Complaint), Created: in.Created, Attached: in.Attached}, nil
}

type reviewCursor struct {
	At time.Time `json:"t"`
	ID string    `json:"i"`
}

// ListReviews lists QA reviews newest first (app.ListReviews).
func (s *Server) ListReviews(ctx context.Context, req *feedbackv1.ListReviewsRequest) (*feedbackv1.ListReviewsResponse, error) {
	size, err := page.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var cur reviewCursor
	if err := page.Cursor(req.GetPageToken(), &cur); err != nil {
		return nil, err
	}
	var l invalid.List
	from, to := timeOf(&l, "from", req.GetFrom()), timeOf(&l, "to", req.GetTo())
	if err := l.Err(); err != nil {
		return nil, statusOf(err)
	}
	list, err := s.App.ListReviews(ctx, app.ReviewList{Tenant: req.GetTenantId(), AgentID: req.GetAgentId(), RecordID: req.GetRecordId(),
		ReviewerID: req.GetReviewerId(), From: from, To: to, ScoreBelow: req.GetScoreBelow(), AfterTime: cur.At, AfterID: cur.ID, Limit: size + 1})
	if err != nil {
		return nil, statusOf(err)
	}
	kept, next := page.Trim(list, size, func(last review.Review) any { return reviewCursor{At: last.At, ID: last.ID} })
	resp := &feedbackv1.ListReviewsResponse{NextPageToken: next}
	for _, r := range kept {
		resp.Reviews = append(resp.Reviews, reviewProto(r))
	}
	return resp, nil
}

// receivedVia is the enum of a complaint's way in: unspecified for one a
// follow-up found.
func receivedVia(name string) feedbackv1.ReceivedVia {
	v, _ := enum.Parse[feedbackv1.ReceivedVia](name)
	return v
}
