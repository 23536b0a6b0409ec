// Package grpcapi serves huifang.feedback.v1.FeedbackService: records,
// questionnaires, the complaint loop and quality review.
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
	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/page"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
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
	// Rules route complaints by category (department, severity, deadline).
	Rules complaint.Rules
}

// statusOf maps the store's and the domain's errors to gRPC statuses; the
// one place where that happens. Other errors pass through (bad input
// becomes InvalidArgument in pkg/grpcserver).
func statusOf(err error, what string) error {
	var se *complaint.StateError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return status.Errorf(codes.NotFound, "%s not found", what)
	case errors.As(err, &se):
		return status.Error(codes.FailedPrecondition, se.Error())
	}
	return err
}

// LogVisit records a completed follow-up: it checks the answers against the
// questionnaire the visit's policy names and the agent against the visit's
// assignment, opens the complaints the record raises (attaching a problem
// the customer raised already to its open complaint), settles the
// complaint a confirmation visit confirms and publishes
// VisitLogged, ComplaintEscalated, FollowUpRequested, ComplaintClosed or
// ComplaintReopened, all in one transaction.
func (s *Server) LogVisit(ctx context.Context, req *feedbackv1.LogVisitRequest) (*feedbackv1.LogVisitResponse, error) {
	now := s.Now()
	record.Normalize(req)
	if err := record.Validate(req, now); err != nil {
		return nil, err
	}
	var rec *feedbackv1.VisitRecord
	err := pgx.BeginFunc(ctx, s.Store.Pool, func(tx pgx.Tx) error {
		v, err := store.GetVisit(ctx, tx, req.TenantId, req.VisitId)
		if err != nil {
			return err
		}
		// Taken before any complaint is held, so every LogVisit locks in one order.
		if err := store.LockCustomer(ctx, tx, req.TenantId, v.CustomerID); err != nil {
			return err
		}
		q, err := s.questionnaireOf(ctx, tx, req, v)
		if err != nil {
			return err
		}
		confirmed, err := s.confirmation(ctx, tx, req, v)
		if err != nil {
			return err
		}
		answers, err := record.Complete(req, v, q, confirmedComplaint(confirmed))
		if err != nil {
			return err
		}
		rec = record.New(outbox.NewEventID(), req, v, answers, q, now)
		if confirmed != nil {
			rec.ConfirmedComplaintId = confirmed.Complaint.Id
		}
		opened := complaint.Open(rec, v, s.Rules)
		for i := range opened {
			o := &opened[i]
			// One problem raised again while its complaint is open is recorded once (seeds 000, 002).
			existing, err := store.FindOpenComplaint(ctx, tx, rec.TenantId, o.Complaint.CustomerId, o.Complaint.Category, o.Key)
			if err != nil {
				return err
			}
			if existing != "" {
				o.Complaint.Id, o.Attached = existing, true
				rec.AttachedComplaintIds = append(rec.AttachedComplaintIds, existing)
			} else {
				o.Complaint.Id = outbox.NewEventID()
			}
			rec.ComplaintIds = append(rec.ComplaintIds, o.Complaint.Id)
		}
		if err := store.SaveRecord(ctx, tx, rec, v, q, opened); err != nil {
			return err
		}
		if confirmed != nil {
			return s.confirm(ctx, tx, rec, confirmed, now)
		}
		return nil
	})
	switch {
	case errors.Is(err, store.ErrUnknownVisit):
		return nil, status.Errorf(codes.NotFound,
			"visit %q is unknown: feedback learns visits from VisitDue events; retry once the visit has fallen due", req.VisitId)
	case errors.Is(err, store.ErrAlreadyLogged), postgres.IsUniqueViolation(err):
		return nil, status.Errorf(codes.AlreadyExists,
			"visit %q already has its record; records are append-only: correct it with AmendVisitRecord (seed 004)", req.VisitId)
	case err != nil:
		if _, bad := invalid.As(err); bad {
			return nil, err
		}
		if st := statusOf(err, "complaint "+req.ComplaintId); st != err {
			return nil, st
		}
		return nil, fmt.Errorf("log visit %s: %w", req.VisitId, err)
	}
	s.Relay.Notify()
	return &feedbackv1.LogVisitResponse{Record: rec}, nil
}

// questionnaireOf returns the questionnaire version the visit's answers are
// checked against: the one its policy names (the version the form showed,
// when given), or nil when the policy names none: then answers are free
// aspects rated on the 3-level scale.
func (s *Server) questionnaireOf(ctx context.Context, tx pgx.Tx, req *feedbackv1.LogVisitRequest, v visit.Visit) (*feedbackv1.Questionnaire, error) {
	q, err := store.PolicyQuestionnaire(ctx, tx, req.TenantId, v.PolicyID)
	if err != nil || req.QuestionnaireVersion == 0 {
		return q, err
	}
	if q == nil {
		return nil, invalid.New("questionnaire_version", fmt.Sprintf("the visit's policy %q names no questionnaire; leave it 0", v.PolicyID))
	}
	shown, err := store.GetQuestionnaire(ctx, tx, req.TenantId, q.Id, req.QuestionnaireVersion)
	if errors.Is(err, store.ErrNotFound) {
		return nil, invalid.New("questionnaire_version", fmt.Sprintf("questionnaire %s has no version %d", q.Id, req.QuestionnaireVersion))
	}
	return shown, err
}

// confirmation returns the complaint the visit confirms, held for update,
// or nil. A complaint named in the request must exist and be resolved; one
// named by the visit (from VisitDue) is confirmed only while it is resolved.
func (s *Server) confirmation(ctx context.Context, tx pgx.Tx, req *feedbackv1.LogVisitRequest, v visit.Visit) (*store.Locked, error) {
	id, named := req.ComplaintId, req.ComplaintId != ""
	if !named {
		id = v.ComplaintID
	}
	if id == "" {
		return nil, nil
	}
	l, err := store.GetComplaint(ctx, tx, req.TenantId, id, true)
	switch {
	case errors.Is(err, store.ErrNotFound) && named:
		return nil, invalid.New("complaint_id", fmt.Sprintf("no complaint %q in tenant %s", id, req.TenantId))
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	if l.Complaint.Status != complaint.StatusResolved {
		if named {
			return nil, &complaint.StateError{ID: id, Status: l.Complaint.Status, Action: "confirmed (only a resolved complaint is)"}
		}
		return nil, nil
	}
	return &l, nil
}

// confirmedComplaint returns the complaint l holds, nil when l is nil.
func confirmedComplaint(l *store.Locked) *feedbackv1.Complaint {
	if l == nil {
		return nil
	}
	return l.Complaint
}

// confirm settles a resolved complaint by the customer's overall rating:
// satisfied (or fairly satisfied) closes it; unsatisfied reopens it one
// level up (seed 004: go again until the customer is satisfied).
func (s *Server) confirm(ctx context.Context, tx pgx.Tx, rec *feedbackv1.VisitRecord, l *store.Locked, now time.Time) error {
	c := l.Complaint
	overall, comment := record.Overall(rec)
	if overall == typesv1.Rating_RATING_UNSATISFIED {
		reason := strings.TrimSpace(rec.Comments)
		if reason == "" {
			reason = comment
		}
		if reason == "" {
			reason = "the customer is not satisfied with the resolution"
		}
		reason = "confirmation visit " + rec.VisitId + ": " + reason
		return s.reopen(ctx, tx, l, rec.AgentId, reason, now)
	}
	if err := complaint.Close(c, complaint.OutcomeSatisfied, "confirmed by the customer in visit "+rec.VisitId, now); err != nil {
		return err
	}
	return s.saveClosed(ctx, tx, c, rec.AgentId, now)
}

func (s *Server) reopen(ctx context.Context, tx pgx.Tx, l *store.Locked, by, reason string, now time.Time) error {
	c := l.Complaint
	if err := complaint.Reopen(c, l.Window, now); err != nil {
		return err
	}
	if err := store.UpdateComplaint(ctx, tx, c); err != nil {
		return err
	}
	if err := store.AddStep(ctx, tx, c.Id, &feedbackv1.ComplaintStep{Kind: complaint.StepReopened, By: by, At: timestamppb.New(now), Detail: reason, Level: c.Level}); err != nil {
		return err
	}
	re := complaint.Reopened(outbox.NewEventID(), c, reason, now)
	if err := store.Publish(ctx, tx, stream.SubjectComplaintReopened, re.EventId, re); err != nil {
		return err
	}
	esc := complaint.Escalated(outbox.NewEventID(), c, now)
	return store.Publish(ctx, tx, stream.SubjectComplaintEscalated, esc.EventId, esc)
}

func (s *Server) saveClosed(ctx context.Context, tx pgx.Tx, c *feedbackv1.Complaint, by string, now time.Time) error {
	if err := store.UpdateComplaint(ctx, tx, c); err != nil {
		return err
	}
	if err := store.AddStep(ctx, tx, c.Id, &feedbackv1.ComplaintStep{Kind: complaint.StepClosed, By: by, At: timestamppb.New(now),
		Detail: c.Outcome + ": " + c.CloseReason, Level: c.Level}); err != nil {
		return err
	}
	ev := complaint.Closed(outbox.NewEventID(), c, by, now)
	return store.Publish(ctx, tx, stream.SubjectComplaintClosed, ev.EventId, ev)
}

// GetVisitRecord returns one record as logged, by its id or its visit's id,
// with its amendments, its current form and its sign-offs.
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
	amendments, err := store.Amendments(ctx, s.Store.Pool, rec.Id)
	if err != nil {
		return nil, err
	}
	signOffs, err := store.SignOffs(ctx, s.Store.Pool, rec.Id)
	if err != nil {
		return nil, err
	}
	resp := &feedbackv1.GetVisitRecordResponse{Record: rec, Current: store.Current(rec, amendments), SignOffs: signOffs}
	for _, a := range amendments {
		resp.Amendments = append(resp.Amendments, a.Amendment)
	}
	return resp, nil
}

// AmendVisitRecord appends a correction to a record; the record as logged
// never changes (seed 004).
func (s *Server) AmendVisitRecord(ctx context.Context, req *feedbackv1.AmendVisitRecordRequest) (*feedbackv1.AmendVisitRecordResponse, error) {
	req.TenantId = visit.Tenant(req.TenantId)
	record.NormalizeAmend(req)
	if err := record.ValidateAmend(req); err != nil {
		return nil, err
	}
	now := s.Now()
	resp := &feedbackv1.AmendVisitRecordResponse{}
	err := pgx.BeginFunc(ctx, s.Store.Pool, func(tx pgx.Tx) error {
		rec, err := store.GetRecord(ctx, tx, req.TenantId, req.RecordId, true)
		if err != nil {
			return err
		}
		list, err := store.Amendments(ctx, tx, rec.Id)
		if err != nil {
			return err
		}
		var q *feedbackv1.Questionnaire
		if rec.QuestionnaireId != "" {
			if q, err = store.GetQuestionnaire(ctx, tx, req.TenantId, rec.QuestionnaireId, rec.QuestionnaireVersion); err != nil {
				return fmt.Errorf("questionnaire of record %s: %w", rec.Id, err)
			}
		}
		current := store.Current(rec, list)
		c, changes, err := record.Amend(current, q, req)
		if err != nil {
			return err
		}
		a := record.NewAmendment(outbox.NewEventID(), rec.Id, req, changes, now)
		if err := store.AddAmendment(ctx, tx, req.TenantId, a, c); err != nil {
			return err
		}
		resp.Amendment, resp.Current = a, record.Apply(current, c)
		return nil
	})
	if err != nil {
		return nil, statusOf(err, "record "+req.RecordId)
	}
	return resp, nil
}

// SignOffVisitRecord stores a leader's review of a record.
func (s *Server) SignOffVisitRecord(ctx context.Context, req *feedbackv1.SignOffVisitRecordRequest) (*feedbackv1.SignOffVisitRecordResponse, error) {
	tenant := visit.Tenant(req.GetTenantId())
	recordID, leader := strings.TrimSpace(req.GetRecordId()), strings.TrimSpace(req.GetLeaderId())
	var l invalid.List
	if recordID == "" {
		l.Add("record_id", "is required")
	}
	if leader == "" {
		l.Add("leader_id", "is required: the leader who reviewed the record (seed 000, seed 004)")
	}
	if !req.GetApproved() && strings.TrimSpace(req.GetNote()) == "" {
		l.Add("note", "is required when the record is not approved: say what is wrong")
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	so := &feedbackv1.SignOff{LeaderId: leader, Approved: req.GetApproved(), Note: strings.TrimSpace(req.GetNote()), At: timestamppb.New(s.Now())}
	err := pgx.BeginFunc(ctx, s.Store.Pool, func(tx pgx.Tx) error {
		rec, err := store.GetRecord(ctx, tx, tenant, recordID, true)
		if err != nil {
			return err
		}
		so.RecordId = rec.Id
		return store.AddSignOff(ctx, tx, tenant, so)
	})
	if err != nil {
		return nil, statusOf(err, "record "+recordID)
	}
	return &feedbackv1.SignOffVisitRecordResponse{SignOff: so}, nil
}

// CreateQuestionnaire stores a questionnaire as the next version of its id.
func (s *Server) CreateQuestionnaire(ctx context.Context, req *feedbackv1.CreateQuestionnaireRequest) (*feedbackv1.CreateQuestionnaireResponse, error) {
	q := req.GetQuestionnaire()
	if q == nil {
		return nil, invalid.New("questionnaire", "is required")
	}
	q.TenantId = visit.Tenant(q.TenantId)
	if q.TenantId == questionnaire.AllTenants {
		return nil, invalid.New("questionnaire.tenant_id", "\"*\" holds the seed templates; create questionnaires in a tenant")
	}
	questionnaire.Normalize(q)
	if err := questionnaire.Validate(q, "questionnaire"); err != nil {
		return nil, err
	}
	q.CreatedAt = timestamppb.New(s.Now())
	q.Seed = ""
	if err := pgx.BeginFunc(ctx, s.Store.Pool, func(tx pgx.Tx) error { return store.CreateQuestionnaire(ctx, tx, q) }); err != nil {
		return nil, err
	}
	return &feedbackv1.CreateQuestionnaireResponse{Questionnaire: q}, nil
}

// GetQuestionnaire returns one version of a questionnaire.
func (s *Server) GetQuestionnaire(ctx context.Context, req *feedbackv1.GetQuestionnaireRequest) (*feedbackv1.GetQuestionnaireResponse, error) {
	id := strings.TrimSpace(req.GetId())
	if id == "" {
		return nil, invalid.New("id", "is required")
	}
	if req.GetVersion() < 0 {
		return nil, invalid.New("version", "must not be negative; 0 is the latest")
	}
	q, err := store.GetQuestionnaire(ctx, s.Store.Pool, visit.Tenant(req.GetTenantId()), id, req.GetVersion())
	if err != nil {
		return nil, statusOf(err, fmt.Sprintf("questionnaire %s version %d", id, req.GetVersion()))
	}
	return &feedbackv1.GetQuestionnaireResponse{Questionnaire: q}, nil
}

// ListQuestionnaires lists the latest version of each questionnaire a tenant may use.
func (s *Server) ListQuestionnaires(ctx context.Context, req *feedbackv1.ListQuestionnairesRequest) (*feedbackv1.ListQuestionnairesResponse, error) {
	list, err := s.Store.ListQuestionnaires(ctx, visit.Tenant(req.GetTenantId()))
	if err != nil {
		return nil, err
	}
	return &feedbackv1.ListQuestionnairesResponse{Questionnaires: list}, nil
}

// SetPolicyQuestionnaire names the questionnaire a policy's visits use.
func (s *Server) SetPolicyQuestionnaire(ctx context.Context, req *feedbackv1.SetPolicyQuestionnaireRequest) (*feedbackv1.SetPolicyQuestionnaireResponse, error) {
	tenant := visit.Tenant(req.GetTenantId())
	policy, qid := strings.TrimSpace(req.GetPolicyId()), strings.TrimSpace(req.GetQuestionnaireId())
	var l invalid.List
	if policy == "" {
		l.Add("policy_id", "is required: the scheduler policy's id, as VisitDue carries it")
	}
	if qid == "" {
		l.Add("questionnaire_id", "is required")
	}
	if req.GetQuestionnaireVersion() < 0 {
		l.Add("questionnaire_version", "must not be negative; 0 is always the latest")
	}
	if tenant == questionnaire.AllTenants {
		l.Add("tenant_id", "\"*\" entries come from configuration (POLICY_QUESTIONNAIRES)")
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	if _, err := store.GetQuestionnaire(ctx, s.Store.Pool, tenant, qid, req.GetQuestionnaireVersion()); errors.Is(err, store.ErrNotFound) {
		return nil, invalid.New("questionnaire_id", fmt.Sprintf("tenant %s has no questionnaire %q version %d", tenant, qid, req.GetQuestionnaireVersion()))
	} else if err != nil {
		return nil, err
	}
	if err := store.SetPolicyQuestionnaire(ctx, s.Store.Pool, tenant, policy, qid, req.GetQuestionnaireVersion()); err != nil {
		return nil, err
	}
	return &feedbackv1.SetPolicyQuestionnaireResponse{}, nil
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
	list, err := s.Store.ListRecords(ctx, visit.Tenant(req.GetTenantId()), strings.TrimSpace(req.GetAgentId()), req.GetUnsignedOnly(), size+1, cur.At, cur.ID)
	if err != nil {
		return nil, err
	}
	resp := &feedbackv1.ListVisitRecordsResponse{}
	resp.Records, resp.NextPageToken = page.Trim(list, size, func(last *feedbackv1.VisitRecord) any {
		return recordCursor{At: last.LoggedAt.AsTime(), ID: last.Id}
	})
	return resp, nil
}
