package grpcapi

import (
	"context"
	"strings"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/pkg/watch"
)

// complaintEvents are the events of a complaint's progress, each naming
// it (complaint_id): feedback's own, and the scheduler's VisitDue of its
// confirmation visit.
var complaintEvents = inbox.Events{
	stream.SubjectComplaintEscalated:          func() proto.Message { return new(eventsv1.ComplaintEscalated) },
	stream.SubjectComplaintAcknowledged:       func() proto.Message { return new(eventsv1.ComplaintAcknowledged) },
	stream.SubjectComplaintResolved:           func() proto.Message { return new(eventsv1.ComplaintResolved) },
	stream.SubjectComplaintReopened:           func() proto.Message { return new(eventsv1.ComplaintReopened) },
	stream.SubjectComplaintClosed:             func() proto.Message { return new(eventsv1.ComplaintClosed) },
	stream.SubjectFollowUpRequested:           func() proto.Message { return new(eventsv1.FollowUpRequested) },
	stream.SubjectVisitDue:                    func() proto.Message { return new(eventsv1.VisitDue) },
	stream.SubjectImprovementPlanSet:          func() proto.Message { return new(eventsv1.ImprovementPlanSet) },
	stream.SubjectImprovementMeasureCompleted: func() proto.Message { return new(eventsv1.ImprovementMeasureCompleted) },
}

// WatchComplaint streams one complaint's progress (pkg/watch): the
// complaint as GetComplaint returns it (with the caller's scope), then
// again after each event that names it.
func (s *Server) WatchComplaint(req *feedbackv1.WatchComplaintRequest, ss feedbackv1.FeedbackService_WatchComplaintServer) error {
	ctx := ss.Context()
	id := strings.TrimSpace(req.GetId()) // not blank: feedback.proto's rule
	if _, _, err := watch.Sequence(req.GetCursor()); err != nil {
		return err
	}
	get := &feedbackv1.GetComplaintRequest{TenantId: tenant.Or(req.GetTenantId()), Id: id}
	// Not found and out of scope are answered before the stream starts.
	if _, err := s.GetComplaint(ctx, get); err != nil {
		return err
	}
	spec := watch.Spec{
		Subjects: watch.Subjects(complaintEvents),
		Relevant: watch.Matching(complaintEvents, map[string]string{"tenant_id": get.GetTenantId(), "complaint_id": id}),
		Snapshot: func(ctx context.Context) (proto.Message, error) { return s.GetComplaint(ctx, get) },
	}
	return s.Watches.Run(ctx, req.GetCursor(), spec, func(u watch.Update) error {
		resp := &feedbackv1.WatchComplaintResponse{Cursor: u.Cursor, Kind: u.Kind, Events: u.Events}
		if u.State != nil {
			resp.Complaint = u.State.(*feedbackv1.GetComplaintResponse)
		}
		return ss.Send(resp)
	})
}
