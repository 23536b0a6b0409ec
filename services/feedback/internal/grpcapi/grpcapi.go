// Package grpcapi serves huifang.feedback.v1.FeedbackService.
package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/page"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/record"
	"github.com/huifang/huifang/services/feedback/internal/store"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

// Server implements FeedbackService.
type Server struct {
	feedbackv1.UnimplementedFeedbackServiceServer
	Store *store.Store
	Relay *outbox.Relay
	Now   func() time.Time
	// ComplaintDeadline is how long a department has to answer a complaint.
	ComplaintDeadline time.Duration
}

// LogVisit records a completed follow-up, opens the complaints it raises and
// publishes VisitLogged and ComplaintEscalated, all in one transaction.
func (s *Server) LogVisit(ctx context.Context, req *feedbackv1.LogVisitRequest) (*feedbackv1.LogVisitResponse, error) {
	record.Normalize(req)
	if err := record.Validate(req); err != nil {
		return nil, err
	}
	now := s.Now()
	var rec *feedbackv1.VisitRecord
	err := pgx.BeginFunc(ctx, s.Store.Pool, func(tx pgx.Tx) error {
		v, err := store.GetVisit(ctx, tx, req.TenantId, req.VisitId)
		if err != nil {
			return err
		}
		rec = record.New(outbox.NewEventID(), req, v, now)
		complaints := complaint.Open(rec, s.ComplaintDeadline)
		for _, c := range complaints {
			c.Id = outbox.NewEventID()
			rec.ComplaintIds = append(rec.ComplaintIds, c.Id)
		}
		return store.SaveRecord(ctx, tx, rec, v, complaints)
	})
	switch {
	case errors.Is(err, store.ErrUnknownVisit):
		return nil, status.Errorf(codes.NotFound,
			"visit %q is unknown: feedback learns visits from VisitDue events; retry once the visit has fallen due", req.VisitId)
	case errors.Is(err, store.ErrAlreadyLogged), postgres.IsUniqueViolation(err):
		return nil, status.Errorf(codes.AlreadyExists,
			"visit %q already has its record; records are append-only and not to be altered (seed 004)", req.VisitId)
	case err != nil:
		return nil, fmt.Errorf("log visit %s: %w", req.VisitId, err)
	}
	s.Relay.Notify()
	return &feedbackv1.LogVisitResponse{Record: rec}, nil
}

// GetVisitRecord returns one record, by its id or its visit's id.
func (s *Server) GetVisitRecord(ctx context.Context, req *feedbackv1.GetVisitRecordRequest) (*feedbackv1.GetVisitRecordResponse, error) {
	id := strings.TrimSpace(req.GetId())
	if id == "" {
		return nil, invalid.New("id", "is required: a record id or a visit id")
	}
	rec, err := s.Store.GetRecord(ctx, visit.Tenant(req.GetTenantId()), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "no record with id or visit id %q", id)
	}
	if err != nil {
		return nil, err
	}
	return &feedbackv1.GetVisitRecordResponse{Record: rec}, nil
}

type complaintCursor struct {
	At time.Time `json:"t"`
	ID string    `json:"i"`
}

// ListComplaints lists complaints newest first.
func (s *Server) ListComplaints(ctx context.Context, req *feedbackv1.ListComplaintsRequest) (*feedbackv1.ListComplaintsResponse, error) {
	size, err := page.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var cur complaintCursor
	if err := page.Cursor(req.GetPageToken(), &cur); err != nil {
		return nil, err
	}
	list, err := s.Store.ListComplaints(ctx, visit.Tenant(req.GetTenantId()), size+1, cur.At, cur.ID)
	if err != nil {
		return nil, err
	}
	resp := &feedbackv1.ListComplaintsResponse{}
	if len(list) > size {
		list = list[:size]
		last := list[size-1]
		resp.NextPageToken = page.Token(complaintCursor{At: last.CreatedAt.AsTime(), ID: last.Id})
	}
	resp.Complaints = list
	return resp, nil
}
