// Package grpcapi serves huifang.feedback.v1.FeedbackService: records,
// questionnaires, the complaint loop and quality review. It is a thin
// adapter: each call reads its request into the app's input, runs one app
// command or query and writes the response; statusOf (status.go) is the
// one place where errors become gRPC statuses.
package grpcapi

import (
	"context"
	"time"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"

	"github.com/huifang/huifang/pkg/page"
	"github.com/huifang/huifang/pkg/watch"
	"github.com/huifang/huifang/services/feedback/internal/app"
	"github.com/huifang/huifang/services/feedback/internal/record"
)

// Server implements FeedbackService over the app.
type Server struct {
	feedbackv1.UnimplementedFeedbackServiceServer
	App *app.App
	// Watches runs WatchComplaint (the runtime's hub).
	Watches *watch.Hub
}

// LogVisit records a completed follow-up (app.LogVisitTx).
func (s *Server) LogVisit(ctx context.Context, req *feedbackv1.LogVisitRequest) (*feedbackv1.LogVisitResponse, error) {
	d, err := draftOf(req)
	if err != nil {
		return nil, err
	}
	rec, err := s.App.LogVisit(ctx, d)
	if err != nil {
		return nil, statusOf(err)
	}
	return &feedbackv1.LogVisitResponse{Record: recordProto(rec)}, nil
}

// GetVisitRecord returns one record as logged, by its id or its visit's id,
// with its amendments, its current form and its sign-offs.
func (s *Server) GetVisitRecord(ctx context.Context, req *feedbackv1.GetVisitRecordRequest) (*feedbackv1.GetVisitRecordResponse, error) {
	v, err := s.App.GetRecord(ctx, req.GetTenantId(), req.GetId())
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &feedbackv1.GetVisitRecordResponse{Record: recordProto(v.Record), Current: recordProto(v.Current)}
	for _, a := range v.Amendments {
		resp.Amendments = append(resp.Amendments, amendmentProto(a))
	}
	for _, so := range v.SignOffs {
		resp.SignOffs = append(resp.SignOffs, signOffProto(so))
	}
	return resp, nil
}

// AmendVisitRecord appends a correction to a record; the record as logged
// never changes (seed 004).
func (s *Server) AmendVisitRecord(ctx context.Context, req *feedbackv1.AmendVisitRecordRequest) (*feedbackv1.AmendVisitRecordResponse, error) {
	am, err := s.App.AmendRecord(ctx, amendDraftOf(req))
	if err != nil {
		return nil, statusOf(err)
	}
	return &feedbackv1.AmendVisitRecordResponse{Amendment: amendmentProto(am.Amendment), Current: recordProto(am.Current)}, nil
}

// SignOffVisitRecord stores a leader's review of a record.
func (s *Server) SignOffVisitRecord(ctx context.Context, req *feedbackv1.SignOffVisitRecordRequest) (*feedbackv1.SignOffVisitRecordResponse, error) {
	so, err := s.App.SignOffRecord(ctx, app.SignOff{Tenant: req.GetTenantId(), RecordID: req.GetRecordId(), LeaderID: req.GetLeaderId(),
		Approved: req.GetApproved(), Note: req.GetNote()})
	if err != nil {
		return nil, statusOf(err)
	}
	return &feedbackv1.SignOffVisitRecordResponse{SignOff: signOffProto(so)}, nil
}

type recordCursor struct {
	At time.Time `json:"t"`
	ID string    `json:"i"`
}

// ListVisitRecords lists records newest first.
func (s *Server) ListVisitRecords(ctx context.Context, req *feedbackv1.ListVisitRecordsRequest) (*feedbackv1.ListVisitRecordsResponse, error) {
	size, err := page.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var cur recordCursor
	if err := page.Cursor(req.GetPageToken(), &cur); err != nil {
		return nil, err
	}
	list, err := s.App.ListRecords(ctx, app.RecordList{Tenant: req.GetTenantId(), Agent: req.GetAgentId(), UnsignedOnly: req.GetUnsignedOnly(),
		NoShowOnly: req.GetNoShowOnly(), NoShowReason: req.GetNoShowReason(), AfterTime: cur.At, AfterID: cur.ID, Limit: size + 1})
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &feedbackv1.ListVisitRecordsResponse{}
	kept, next := page.Trim(list, size, func(last record.Record) any { return recordCursor{At: last.LoggedAt, ID: last.ID} })
	resp.Records, resp.NextPageToken = recordsProto(kept), next
	return resp, nil
}

// CreateQuestionnaire stores a questionnaire as the next version of its id.
func (s *Server) CreateQuestionnaire(ctx context.Context, req *feedbackv1.CreateQuestionnaireRequest) (*feedbackv1.CreateQuestionnaireResponse, error) {
	q, err := s.App.CreateQuestionnaire(ctx, questionnaireOf(req.GetQuestionnaire()))
	if err != nil {
		return nil, statusOf(err)
	}
	return &feedbackv1.CreateQuestionnaireResponse{Questionnaire: questionnaireProto(q)}, nil
}

// GetQuestionnaire returns one version of a questionnaire.
func (s *Server) GetQuestionnaire(ctx context.Context, req *feedbackv1.GetQuestionnaireRequest) (*feedbackv1.GetQuestionnaireResponse, error) {
	q, err := s.App.GetQuestionnaire(ctx, req.GetTenantId(), req.GetId(), req.GetVersion())
	if err != nil {
		return nil, statusOf(err)
	}
	return &feedbackv1.GetQuestionnaireResponse{Questionnaire: questionnaireProto(q)}, nil
}

// GetPolicyQuestionnaire returns the questionnaire a policy's visits use.
func (s *Server) GetPolicyQuestionnaire(ctx context.Context, req *feedbackv1.GetPolicyQuestionnaireRequest) (*feedbackv1.GetPolicyQuestionnaireResponse, error) {
	q, err := s.App.GetPolicyQuestionnaire(ctx, req.GetTenantId(), req.GetPolicyId())
	if err != nil {
		return nil, statusOf(err)
	}
	return &feedbackv1.GetPolicyQuestionnaireResponse{Questionnaire: questionnaireProto(q)}, nil
}

// ListQuestionnaires lists the latest version of each questionnaire a tenant may use.
func (s *Server) ListQuestionnaires(ctx context.Context, req *feedbackv1.ListQuestionnairesRequest) (*feedbackv1.ListQuestionnairesResponse, error) {
	list, err := s.App.ListQuestionnaires(ctx, req.GetTenantId())
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &feedbackv1.ListQuestionnairesResponse{}
	for _, q := range list {
		resp.Questionnaires = append(resp.Questionnaires, questionnaireProto(q))
	}
	return resp, nil
}

// SetPolicyQuestionnaire names the questionnaire a policy's visits use.
func (s *Server) SetPolicyQuestionnaire(ctx context.Context, req *feedbackv1.SetPolicyQuestionnaireRequest) (*feedbackv1.SetPolicyQuestionnaireResponse, error) {
	err := s.App.SetPolicyQuestionnaire(ctx, app.PolicyQuestionnaire{Tenant: req.GetTenantId(), PolicyID: req.GetPolicyId(),
		QuestionnaireID: req.GetQuestionnaireId(), Version: req.GetQuestionnaireVersion()})
	if err != nil {
		return nil, statusOf(err)
	}
	return &feedbackv1.SetPolicyQuestionnaireResponse{}, nil
}
