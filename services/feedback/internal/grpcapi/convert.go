package grpcapi

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/improvement"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/record"
	"github.com/huifang/huifang/services/feedback/internal/review"
	"github.com/huifang/huifang/services/feedback/internal/wire"
)

// timeOf reads a timestamp of the request: zero when unset; an invalid
// one is a violation of field.
func timeOf(l *invalid.List, field string, ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	if err := ts.CheckValid(); err != nil {
		l.Add(field, "must be a valid timestamp")
		return time.Time{}
	}
	return ts.AsTime()
}

// validTime reads a timestamp that must be valid: zero when unset or invalid.
func validTime(ts *timestamppb.Timestamp) time.Time {
	if ts.CheckValid() != nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// draftOf reads a LogVisitRequest; an invalid timestamp is refused here,
// the app checks the rest.
func draftOf(req *feedbackv1.LogVisitRequest) (record.Draft, error) {
	var l invalid.List
	d := record.Draft{
		TenantID:             req.GetTenantId(),
		VisitID:              req.GetVisitId(),
		AgentID:              req.GetAgentId(),
		Channel:              req.GetChannel(),
		Answers:              wire.AnswersFromProto(req.GetAnswers()),
		Problems:             wire.ProblemsFromProto(req.GetProblems()),
		Comments:             req.GetComments(),
		StartedAt:            timeOf(&l, "started_at", req.GetStartedAt()),
		EndedAt:              timeOf(&l, "ended_at", req.GetEndedAt()),
		QuestionnaireVersion: req.GetQuestionnaireVersion(),
		SignatureRef:         req.GetSignatureRef(),
		Attachments:          wire.AttachmentsFromProto(req.GetAttachments()),
		ComplaintID:          req.GetComplaintId(),
		OccurredAt:           timeOf(&l, "occurred_at", req.GetOccurredAt()),
	}
	if n := req.GetNoShow(); n != nil {
		d.NoShow = &record.NoShow{Reason: n.GetReason(), Note: n.GetNote()}
	}
	for i, p := range req.GetPromisedReplies() {
		d.PromisedReplies = append(d.PromisedReplies, record.PromisedReply{Question: p.GetQuestion(), Channel: p.GetChannel(),
			PromisedAt: timeOf(&l, fmt.Sprintf("promised_replies[%d].promised_at", i), p.GetPromisedAt())})
	}
	return d, l.Err()
}

// amendDraftOf reads an AmendVisitRecordRequest.
func amendDraftOf(req *feedbackv1.AmendVisitRecordRequest) record.AmendDraft {
	return record.AmendDraft{TenantID: req.GetTenantId(), RecordID: req.GetRecordId(), By: req.GetBy(), Reason: req.GetReason(),
		Correction: record.Correction{Answers: wire.AnswersFromProto(req.GetAnswers()), Comments: req.Comments, SignatureRef: req.SignatureRef,
			Attachments: wire.AttachmentsFromProto(req.GetAttachments())}}
}

func recordProto(r record.Record) *feedbackv1.VisitRecord {
	return &feedbackv1.VisitRecord{
		Id: r.ID, TenantId: r.TenantID, VisitId: r.VisitID, AgentId: r.AgentID, Channel: r.Channel,
		Answers: wire.AnswersToProto(r.Answers), Problems: wire.ProblemsToProto(r.Problems), Comments: r.Comments,
		StartedAt: wire.Timestamp(r.StartedAt), EndedAt: wire.Timestamp(r.EndedAt), LoggedAt: wire.Timestamp(r.LoggedAt), OccurredAt: wire.Timestamp(r.OccurredAt), NoShow: noShowProto(r.NoShow),
		CustomerId: r.CustomerID, OrgUnit: r.OrgUnit, ComplaintIds: r.ComplaintIDs,
		QuestionnaireId: r.QuestionnaireID, QuestionnaireVersion: r.QuestionnaireVersion, SignatureRef: r.SignatureRef,
		Attachments: wire.AttachmentsToProto(r.Attachments), PromisedReplies: wire.PromisedRepliesToProto(r.PromisedReplies),
		ConfirmedComplaintId: r.ConfirmedComplaintID, AttachedComplaintIds: r.AttachedComplaintIDs,
	}
}

func recordsProto(list []record.Record) []*feedbackv1.VisitRecord {
	out := make([]*feedbackv1.VisitRecord, 0, len(list))
	for _, r := range list {
		out = append(out, recordProto(r))
	}
	return out
}

func amendmentProto(a record.Amendment) *feedbackv1.Amendment {
	return &feedbackv1.Amendment{Id: a.ID, RecordId: a.RecordID, By: a.By, Reason: a.Reason, At: wire.Timestamp(a.At),
		Changes: wire.FieldChangesToProto(a.Changes)}
}

func signOffProto(s record.SignOff) *feedbackv1.SignOff {
	return &feedbackv1.SignOff{RecordId: s.RecordID, LeaderId: s.LeaderID, Approved: s.Approved, Note: s.Note, At: wire.Timestamp(s.At)}
}

func complaintProto(c complaint.Complaint) *feedbackv1.Complaint {
	return &feedbackv1.Complaint{
		Id: c.ID, TenantId: c.TenantID, VisitId: c.VisitID, CustomerId: c.CustomerID, Category: c.Category,
		Description: c.Description, Department: c.Department, Severity: c.Severity, Status: c.Status,
		Deadline: wire.Timestamp(c.Deadline), CreatedAt: wire.Timestamp(c.CreatedAt), OwnerAgentId: c.OwnerAgentID,
		Level: c.Level, RootCause: c.RootCause, Action: c.Action, Outcome: c.Outcome, CloseReason: c.CloseReason,
		OpenLetterIds: c.OpenLetterIDs, ServiceId: c.ServiceID, OrgUnit: c.OrgUnit, UpdatedAt: wire.Timestamp(c.UpdatedAt),
		Anonymous: c.Anonymous, WrittenReplyOnly: c.WrittenReplyOnly, WrittenReply: c.WrittenReply,
		WrittenReplyRef: c.WrittenReplyRef, TimesRaised: c.TimesRaised,
		ReceivedVia: receivedVia(c.ReceivedVia), CreatedBy: c.CreatedBy,
	}
}

func stepProto(s complaint.Step) *feedbackv1.ComplaintStep {
	return &feedbackv1.ComplaintStep{Kind: s.Kind, By: s.By, At: wire.Timestamp(s.At), Detail: s.Detail, Level: s.Level}
}

func letterProto(l complaint.Letter) *feedbackv1.OpenLetter {
	return &feedbackv1.OpenLetter{Id: l.ID, TenantId: l.TenantID, Title: l.Title, Body: l.Body, By: l.By,
		ComplaintIds: l.ComplaintIDs, CreatedAt: wire.Timestamp(l.CreatedAt)}
}

func questionnaireProto(q questionnaire.Questionnaire) *feedbackv1.Questionnaire {
	return &feedbackv1.Questionnaire{Id: q.ID, TenantId: q.TenantID, Version: q.Version, Name: q.Name, Description: q.Description,
		Questions: wire.QuestionsToProto(q.Questions), CreatedAt: wire.Timestamp(q.CreatedAt), Seed: q.Seed}
}

func questionnaireOf(q *feedbackv1.Questionnaire) questionnaire.Questionnaire {
	return questionnaire.Questionnaire{TenantID: q.GetTenantId(), ID: q.GetId(), Version: q.GetVersion(), Name: q.GetName(),
		Description: q.GetDescription(), Seed: q.GetSeed(), Questions: wire.QuestionsFromProto(q.GetQuestions())}
}

func reviewProto(r review.Review) *feedbackv1.Review {
	return &feedbackv1.Review{Id: r.ID, TenantId: r.TenantID, RecordId: r.RecordID, AgentId: r.AgentID, ReviewerId: r.ReviewerID,
		Scores: wire.ScoresToProto(r.Scores), Score: r.Score, Comments: r.Comments, At: wire.Timestamp(r.At)}
}

// noShowProto is a record's no-show, nil for none.
func noShowProto(n *record.NoShow) *feedbackv1.NoShow {
	if n == nil {
		return nil
	}
	return &feedbackv1.NoShow{Reason: n.Reason, Note: n.Note}
}

func planProto(p improvement.Plan) *feedbackv1.ImprovementPlan {
	out := &feedbackv1.ImprovementPlan{ComplaintId: p.ComplaintID, TenantId: p.TenantID, SetBy: p.SetBy, SetAt: wire.Timestamp(p.SetAt),
		UpdatedAt: wire.Timestamp(p.UpdatedAt), CarriedOut: p.CarriedOut()}
	for _, m := range p.Measures {
		out.Measures = append(out.Measures, &feedbackv1.ImprovementMeasure{Id: m.ID, Text: m.Text, Owner: m.Owner, DueAt: wire.Timestamp(m.DueAt),
			CompletedAt: wire.Timestamp(m.CompletedAt), CompletedBy: m.CompletedBy, Note: m.Note})
	}
	return out
}
