package grpcapi

import (
	"context"
	"fmt"
	"time"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/page"
	"github.com/huifang/huifang/services/feedback/internal/app"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/improvement"
)

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
	list, err := s.App.ListComplaints(ctx, app.ComplaintList{Tenant: req.GetTenantId(), Status: req.GetStatus(), Department: req.GetDepartment(),
		AfterTime: cur.At, AfterID: cur.ID, Limit: size + 1})
	if err != nil {
		return nil, statusOf(err)
	}
	kept, next := page.Trim(list, size, func(last complaint.Complaint) any { return complaintCursor{At: last.CreatedAt, ID: last.ID} })
	resp := &feedbackv1.ListComplaintsResponse{NextPageToken: next}
	for _, c := range kept {
		resp.Complaints = append(resp.Complaints, complaintProto(c))
	}
	return resp, nil
}

// GetComplaint returns a complaint and its history.
func (s *Server) GetComplaint(ctx context.Context, req *feedbackv1.GetComplaintRequest) (*feedbackv1.GetComplaintResponse, error) {
	v, err := s.App.GetComplaint(ctx, req.GetTenantId(), req.GetId())
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &feedbackv1.GetComplaintResponse{Complaint: complaintProto(v.Complaint)}
	for _, st := range v.History {
		resp.History = append(resp.History, stepProto(st))
	}
	if v.Plan != nil {
		resp.ImprovementPlan = planProto(*v.Plan)
	}
	return resp, nil
}

// AcknowledgeComplaint: the owning department took the complaint.
func (s *Server) AcknowledgeComplaint(ctx context.Context, req *feedbackv1.AcknowledgeComplaintRequest) (*feedbackv1.AcknowledgeComplaintResponse, error) {
	c, err := s.App.AcknowledgeComplaint(ctx, app.Acknowledge{Tenant: req.GetTenantId(), ComplaintID: req.GetComplaintId(), By: req.GetBy()})
	if err != nil {
		return nil, statusOf(err)
	}
	return &feedbackv1.AcknowledgeComplaintResponse{Complaint: complaintProto(c)}, nil
}

// ResolveComplaint records the root cause and the action (app.ResolveComplaintTx).
func (s *Server) ResolveComplaint(ctx context.Context, req *feedbackv1.ResolveComplaintRequest) (*feedbackv1.ResolveComplaintResponse, error) {
	var l invalid.List
	at := timeOf(&l, "occurred_at", req.GetOccurredAt())
	if err := l.Err(); err != nil {
		return nil, statusOf(err)
	}
	c, err := s.App.ResolveComplaint(ctx, app.Resolve{Tenant: req.GetTenantId(), ComplaintID: req.GetComplaintId(), By: req.GetBy(),
		RootCause: req.GetRootCause(), Action: req.GetAction(), WrittenReply: req.GetWrittenReply(), WrittenReplyRef: req.GetWrittenReplyRef(),
		OccurredAt: at})
	if err != nil {
		return nil, statusOf(err)
	}
	return &feedbackv1.ResolveComplaintResponse{Complaint: complaintProto(c)}, nil
}

// ReopenComplaint reopens a resolved complaint one level up.
func (s *Server) ReopenComplaint(ctx context.Context, req *feedbackv1.ReopenComplaintRequest) (*feedbackv1.ReopenComplaintResponse, error) {
	c, err := s.App.ReopenComplaint(ctx, app.Reopen{Tenant: req.GetTenantId(), ComplaintID: req.GetComplaintId(), By: req.GetBy(), Reason: req.GetReason()})
	if err != nil {
		return nil, statusOf(err)
	}
	return &feedbackv1.ReopenComplaintResponse{Complaint: complaintProto(c)}, nil
}

// CloseComplaint: a manager ends the loop with a reason.
func (s *Server) CloseComplaint(ctx context.Context, req *feedbackv1.CloseComplaintRequest) (*feedbackv1.CloseComplaintResponse, error) {
	c, err := s.App.CloseComplaint(ctx, app.Close{Tenant: req.GetTenantId(), ComplaintID: req.GetComplaintId(), By: req.GetBy(), Reason: req.GetReason()})
	if err != nil {
		return nil, statusOf(err)
	}
	return &feedbackv1.CloseComplaintResponse{Complaint: complaintProto(c)}, nil
}

// CreateOpenLetter files one letter answering the same issue of many
// customers and attaches it to each of their complaints (seed 000).
func (s *Server) CreateOpenLetter(ctx context.Context, req *feedbackv1.CreateOpenLetterRequest) (*feedbackv1.CreateOpenLetterResponse, error) {
	l, err := s.App.CreateOpenLetter(ctx, app.OpenLetter{Tenant: req.GetTenantId(), Title: req.GetTitle(), Body: req.GetBody(), By: req.GetBy(),
		ComplaintIDs: req.GetComplaintIds()})
	if err != nil {
		return nil, statusOf(err)
	}
	return &feedbackv1.CreateOpenLetterResponse{Letter: letterProto(l)}, nil
}

// SetImprovementPlan sets the owning department's improvement plan of a
// problem (seed 003; app.SetImprovementPlanTx).
func (s *Server) SetImprovementPlan(ctx context.Context, req *feedbackv1.SetImprovementPlanRequest) (*feedbackv1.SetImprovementPlanResponse, error) {
	var l invalid.List
	measures := make([]improvement.Measure, 0, len(req.GetMeasures()))
	for i, m := range req.GetMeasures() {
		measures = append(measures, improvement.Measure{Text: m.GetText(), Owner: m.GetOwner(),
			DueAt: timeOf(&l, fmt.Sprintf("measures[%d].due_at", i), m.GetDueAt())})
	}
	if err := l.Err(); err != nil {
		return nil, statusOf(err)
	}
	p, err := s.App.SetImprovementPlan(ctx, app.SetPlan{Tenant: req.GetTenantId(), ComplaintID: req.GetComplaintId(), Measures: measures})
	if err != nil {
		return nil, statusOf(err)
	}
	return &feedbackv1.SetImprovementPlanResponse{Plan: planProto(p)}, nil
}

// CompleteImprovementMeasure marks one measure of a plan carried out
// (app.CompleteImprovementMeasureTx).
func (s *Server) CompleteImprovementMeasure(ctx context.Context, req *feedbackv1.CompleteImprovementMeasureRequest) (*feedbackv1.CompleteImprovementMeasureResponse, error) {
	var l invalid.List
	at := timeOf(&l, "occurred_at", req.GetOccurredAt())
	if err := l.Err(); err != nil {
		return nil, statusOf(err)
	}
	p, err := s.App.CompleteImprovementMeasure(ctx, app.CompleteMeasure{Tenant: req.GetTenantId(), ComplaintID: req.GetComplaintId(),
		MeasureID: req.GetMeasureId(), Note: req.GetNote(), OccurredAt: at})
	if err != nil {
		return nil, statusOf(err)
	}
	return &feedbackv1.CompleteImprovementMeasureResponse{Plan: planProto(p)}, nil
}
