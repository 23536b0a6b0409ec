package grpcapi

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/page"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/store"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

type complaintCursor struct {
	At time.Time `json:"t"`
	ID string    `json:"i"`
}

var statuses = []string{complaint.StatusOpen, complaint.StatusAcknowledged, complaint.StatusResolved, complaint.StatusClosed}

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
	st := strings.TrimSpace(req.GetStatus())
	if st != "" && !contains(statuses, st) {
		return nil, invalid.New("status", "must be one of "+strings.Join(statuses, ", "))
	}
	list, err := s.Store.ListComplaints(ctx, visit.Tenant(req.GetTenantId()), st, strings.TrimSpace(req.GetDepartment()), size+1, cur.At, cur.ID)
	if err != nil {
		return nil, err
	}
	resp := &feedbackv1.ListComplaintsResponse{}
	resp.Complaints, resp.NextPageToken = page.Trim(list, size, func(last *feedbackv1.Complaint) any {
		return complaintCursor{At: last.CreatedAt.AsTime(), ID: last.Id}
	})
	return resp, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// GetComplaint returns a complaint and its history.
func (s *Server) GetComplaint(ctx context.Context, req *feedbackv1.GetComplaintRequest) (*feedbackv1.GetComplaintResponse, error) {
	id := strings.TrimSpace(req.GetId())
	if id == "" {
		return nil, invalid.New("id", "is required")
	}
	l, err := store.GetComplaint(ctx, s.Store.Pool, visit.Tenant(req.GetTenantId()), id, false)
	if err != nil {
		return nil, statusOf(err, "complaint "+id)
	}
	h, err := store.History(ctx, s.Store.Pool, id)
	if err != nil {
		return nil, err
	}
	return &feedbackv1.GetComplaintResponse{Complaint: l.Complaint, History: h}, nil
}

// change runs fn on a complaint held for update and saves it, in one
// transaction with the events fn writes.
func (s *Server) change(ctx context.Context, tenant, id string, fn func(tx pgx.Tx, l *store.Locked, now time.Time) error) (*feedbackv1.Complaint, error) {
	now := s.Now()
	var c *feedbackv1.Complaint
	err := pgx.BeginFunc(ctx, s.Store.Pool, func(tx pgx.Tx) error {
		l, err := store.GetComplaint(ctx, tx, tenant, id, true)
		if err != nil {
			return err
		}
		if err := fn(tx, &l, now); err != nil {
			return err
		}
		c = l.Complaint
		return nil
	})
	if err != nil {
		return nil, statusOf(err, "complaint "+id)
	}
	s.Relay.Notify()
	return c, nil
}

// required checks the fields every complaint action needs.
func required(l *invalid.List, fields ...[2]string) {
	for _, f := range fields {
		if strings.TrimSpace(f[1]) == "" {
			l.Add(f[0], "is required")
		}
	}
}

// AcknowledgeComplaint: the owning department took the complaint.
func (s *Server) AcknowledgeComplaint(ctx context.Context, req *feedbackv1.AcknowledgeComplaintRequest) (*feedbackv1.AcknowledgeComplaintResponse, error) {
	var l invalid.List
	required(&l, [2]string{"complaint_id", req.GetComplaintId()}, [2]string{"by", req.GetBy()})
	if err := l.Err(); err != nil {
		return nil, err
	}
	by := strings.TrimSpace(req.GetBy())
	c, err := s.change(ctx, visit.Tenant(req.GetTenantId()), strings.TrimSpace(req.GetComplaintId()), func(tx pgx.Tx, l *store.Locked, now time.Time) error {
		if err := complaint.Acknowledge(l.Complaint, now); err != nil {
			return err
		}
		if err := s.saveStep(ctx, tx, l.Complaint, complaint.StepAcknowledged, by, l.Complaint.Department, now); err != nil {
			return err
		}
		ev := complaint.Acknowledged(outbox.NewEventID(), l.Complaint, by, now)
		return store.Publish(ctx, tx, stream.SubjectComplaintAcknowledged, ev.EventId, ev)
	})
	if err != nil {
		return nil, err
	}
	return &feedbackv1.AcknowledgeComplaintResponse{Complaint: c}, nil
}

func (s *Server) saveStep(ctx context.Context, tx pgx.Tx, c *feedbackv1.Complaint, kind, by, detail string, now time.Time) error {
	if err := store.UpdateComplaint(ctx, tx, c); err != nil {
		return err
	}
	return store.AddStep(ctx, tx, c.Id, &feedbackv1.ComplaintStep{Kind: kind, By: by, At: timestamppb.New(now), Detail: detail, Level: c.Level})
}

// ResolveComplaint records the root cause and the action and publishes
// ComplaintResolved, on which the scheduler plans a confirmation visit. A
// complaint that needs no follow-up (anonymous, or only a written reply was
// requested, seed 000) needs the written reply, which is attached to it;
// its ComplaintResolved says no_follow_up and it is closed at once with
// outcome written_reply (ComplaintClosed).
func (s *Server) ResolveComplaint(ctx context.Context, req *feedbackv1.ResolveComplaintRequest) (*feedbackv1.ResolveComplaintResponse, error) {
	var l invalid.List
	required(&l, [2]string{"complaint_id", req.GetComplaintId()}, [2]string{"by", req.GetBy()},
		[2]string{"root_cause", req.GetRootCause()}, [2]string{"action", req.GetAction()})
	reply, replyRef := strings.TrimSpace(req.GetWrittenReply()), strings.TrimSpace(req.GetWrittenReplyRef())
	if len([]rune(reply)) > maxWrittenReply {
		l.Add("written_reply", fmt.Sprintf("at most %d characters; attach a longer letter by written_reply_ref", maxWrittenReply))
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	by, cause, action := strings.TrimSpace(req.GetBy()), strings.TrimSpace(req.GetRootCause()), strings.TrimSpace(req.GetAction())
	c, err := s.change(ctx, visit.Tenant(req.GetTenantId()), strings.TrimSpace(req.GetComplaintId()), func(tx pgx.Tx, l *store.Locked, now time.Time) error {
		c := l.Complaint
		if err := complaint.Resolve(c, cause, action, now); err != nil {
			return err
		}
		noFollowUp := complaint.NoFollowUp(c)
		if noFollowUp && reply == "" && replyRef == "" {
			why := "only a written reply was requested"
			if c.Anonymous {
				why = "it is anonymous"
			}
			return invalid.New("written_reply", fmt.Sprintf("complaint %s needs no follow-up because %s, but its written reply is attached to it (seed 000): give written_reply (the text) or written_reply_ref (the stored letter)", c.Id, why))
		}
		detail := fmt.Sprintf("root cause: %s; action: %s", cause, action)
		if reply != "" || replyRef != "" {
			c.WrittenReply, c.WrittenReplyRef = reply, replyRef
			detail += "; written reply attached"
			if replyRef != "" {
				detail += ": " + replyRef
			}
		}
		if err := s.saveStep(ctx, tx, c, complaint.StepResolved, by, detail, now); err != nil {
			return err
		}
		ev := complaint.Resolved(outbox.NewEventID(), c, by, now)
		if err := store.Publish(ctx, tx, stream.SubjectComplaintResolved, ev.EventId, ev); err != nil {
			return err
		}
		if !noFollowUp {
			return nil
		}
		if err := complaint.CloseWithWrittenReply(c, now); err != nil {
			return err
		}
		return s.saveClosed(ctx, tx, c, by, now)
	})
	if err != nil {
		return nil, err
	}
	return &feedbackv1.ResolveComplaintResponse{Complaint: c}, nil
}

// maxWrittenReply bounds the written reply's text kept on a complaint.
const maxWrittenReply = 20000

// ReopenComplaint reopens a resolved complaint one level up.
func (s *Server) ReopenComplaint(ctx context.Context, req *feedbackv1.ReopenComplaintRequest) (*feedbackv1.ReopenComplaintResponse, error) {
	var l invalid.List
	required(&l, [2]string{"complaint_id", req.GetComplaintId()}, [2]string{"by", req.GetBy()}, [2]string{"reason", req.GetReason()})
	if err := l.Err(); err != nil {
		return nil, err
	}
	by, reason := strings.TrimSpace(req.GetBy()), strings.TrimSpace(req.GetReason())
	c, err := s.change(ctx, visit.Tenant(req.GetTenantId()), strings.TrimSpace(req.GetComplaintId()), func(tx pgx.Tx, l *store.Locked, now time.Time) error {
		return s.reopen(ctx, tx, l, by, reason, now)
	})
	if err != nil {
		return nil, err
	}
	return &feedbackv1.ReopenComplaintResponse{Complaint: c}, nil
}

// CloseComplaint: a manager ends the loop with a reason.
func (s *Server) CloseComplaint(ctx context.Context, req *feedbackv1.CloseComplaintRequest) (*feedbackv1.CloseComplaintResponse, error) {
	var l invalid.List
	required(&l, [2]string{"complaint_id", req.GetComplaintId()}, [2]string{"by", req.GetBy()}, [2]string{"reason", req.GetReason()})
	if err := l.Err(); err != nil {
		return nil, err
	}
	by, reason := strings.TrimSpace(req.GetBy()), strings.TrimSpace(req.GetReason())
	c, err := s.change(ctx, visit.Tenant(req.GetTenantId()), strings.TrimSpace(req.GetComplaintId()), func(tx pgx.Tx, l *store.Locked, now time.Time) error {
		if err := complaint.Close(l.Complaint, complaint.OutcomeClosedByManager, reason, now); err != nil {
			return err
		}
		return s.saveClosed(ctx, tx, l.Complaint, by, now)
	})
	if err != nil {
		return nil, err
	}
	return &feedbackv1.CloseComplaintResponse{Complaint: c}, nil
}

// CreateOpenLetter files one letter answering the same issue of many
// customers and attaches it to each of their complaints (seed 000).
func (s *Server) CreateOpenLetter(ctx context.Context, req *feedbackv1.CreateOpenLetterRequest) (*feedbackv1.CreateOpenLetterResponse, error) {
	letter := &feedbackv1.OpenLetter{
		Id: outbox.NewEventID(), TenantId: visit.Tenant(req.GetTenantId()), Title: strings.TrimSpace(req.GetTitle()),
		Body: strings.TrimSpace(req.GetBody()), By: strings.TrimSpace(req.GetBy()), CreatedAt: timestamppb.New(s.Now()),
	}
	var l invalid.List
	required(&l, [2]string{"title", letter.Title}, [2]string{"body", letter.Body}, [2]string{"by", letter.By})
	if len(req.GetComplaintIds()) == 0 {
		l.Add("complaint_ids", "at least one complaint the letter answers")
	}
	seen := map[string]bool{}
	for i, id := range req.GetComplaintIds() {
		id = strings.TrimSpace(id)
		if id == "" || seen[id] {
			l.Add(fmt.Sprintf("complaint_ids[%d]", i), "must be a complaint id, each once")
			continue
		}
		seen[id] = true
		letter.ComplaintIds = append(letter.ComplaintIds, id)
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	err := pgx.BeginFunc(ctx, s.Store.Pool, func(tx pgx.Tx) error { return store.InsertOpenLetter(ctx, tx, letter) })
	if err != nil {
		return nil, statusOf(err, "one of the complaints")
	}
	return &feedbackv1.CreateOpenLetterResponse{Letter: letter}, nil
}
