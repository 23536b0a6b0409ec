package grpcapi

import (
	"context"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/pkg/watch"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/consumer"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// How the watches pace themselves, unless the Server sets its own.
const (
	// DefaultQueueRefresh and DefaultWallboardRefresh: the state is sent
	// again this often without an event (retries coming due, ages, deadlines,
	// presence changes).
	DefaultQueueRefresh     = 30 * time.Second
	DefaultWallboardRefresh = 10 * time.Second
	// DefaultQueueCoalesce and DefaultWallboardCoalesce: events within this
	// of the first are sent as one update.
	DefaultQueueCoalesce     = 250 * time.Millisecond
	DefaultWallboardCoalesce = time.Second
	// settleWait bounds the wait for dispatch's own consumers to apply an
	// event (a VisitDue becoming a task) before the state is read.
	settleWait = 5 * time.Second
)

// taskEvents are the events that change tasks: those dispatch consumes
// (VisitDue makes a task, VisitCancelled withdraws one) and those it writes
// as tasks are claimed and worked.
var taskEvents = inbox.Events{
	stream.SubjectVisitDue:           func() proto.Message { return &eventsv1.VisitDue{} },
	stream.SubjectVisitCancelled:     func() proto.Message { return &eventsv1.VisitCancelled{} },
	stream.SubjectVisitAssigned:      func() proto.Message { return &eventsv1.VisitAssigned{} },
	stream.SubjectVisitAttempted:     func() proto.Message { return &eventsv1.VisitAttempted{} },
	stream.SubjectVisitUnreachable:   func() proto.Message { return &eventsv1.VisitUnreachable{} },
	stream.SubjectContactOptedOut:    func() proto.Message { return &eventsv1.ContactOptedOut{} },
	stream.SubjectVisitOverdue:       func() proto.Message { return &eventsv1.VisitOverdue{} },
	stream.SubjectAppointmentChanged: func() proto.Message { return &eventsv1.AppointmentChanged{} },
}

// settle waits until dispatch's consumer applied an event it consumes: a
// VisitCancelled's inbox entry, or for a VisitDue (its consumer keeps no
// inbox entries) the visit's task, or the visit remembered as cancelled
// (it makes none). A VisitDue that names no visit makes nothing to wait for.
func (s *Server) settle(ctx context.Context, subject, eventID string, data []byte) error {
	const poll = 50 * time.Millisecond
	switch subject {
	case stream.SubjectVisitCancelled:
		return inbox.AwaitHandled(ctx, s.App.DB, consumer.DurableCancelled, eventID, poll, settleWait)
	case stream.SubjectVisitDue:
		var ev eventsv1.VisitDue
		if proto.Unmarshal(data, &ev) != nil || strings.TrimSpace(ev.GetVisitId()) == "" {
			return nil // dead-lettered: no task comes
		}
		return inbox.Await(ctx, poll, settleWait, consumer.Durable+" applying "+eventID, func(ctx context.Context) (bool, error) {
			return store.VisitSettled(ctx, s.App.DB, tenant.Of(&ev), ev.GetVisitId())
		})
	}
	return nil
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// SetAgentPresence sets an agent's presence.
func (s *Server) SetAgentPresence(ctx context.Context, req *dispatchv1.SetAgentPresenceRequest) (*dispatchv1.SetAgentPresenceResponse, error) {
	// agent_id not blank (the guard fills in an agent's own), presence one of
	// the three: dispatch.proto's rules.
	a, err := s.App.SetPresence(ctx, app.PresenceCall{Tenant: tenant.Or(req.GetTenantId()), AgentID: strings.TrimSpace(req.GetAgentId()),
		State: presenceName(req.GetPresence()), Reason: req.GetReason()})
	if err != nil {
		return nil, statusOf(err)
	}
	return &dispatchv1.SetAgentPresenceResponse{Agent: agentProto(a)}, nil
}

// GetWallboard returns the wallboard of the caller's groups.
func (s *Server) GetWallboard(ctx context.Context, req *dispatchv1.GetWallboardRequest) (*dispatchv1.GetWallboardResponse, error) {
	q, err := wallboardQuery(req.GetTenantId(), req.GetGroup(), req.GetLeaderId(), req.GetWithin(), req.GetTimeZone())
	if err != nil {
		return nil, err
	}
	w, err := s.App.Wallboard(ctx, q)
	if err != nil {
		return nil, statusOf(err)
	}
	return &dispatchv1.GetWallboardResponse{Wallboard: wallboardProto(w)}, nil
}

// WatchQueue streams the caller's queue (pkg/watch).
func (s *Server) WatchQueue(req *dispatchv1.WatchQueueRequest, ss dispatchv1.DispatchService_WatchQueueServer) error {
	ctx := ss.Context()
	agentID := strings.TrimSpace(req.GetAgentId()) // not blank (the guard fills in the caller): dispatch.proto's rule
	ten := tenant.Or(req.GetTenantId())
	if _, err := s.App.Queue(ctx, ten, agentID); err != nil {
		return statusOf(err)
	}
	spec := watch.Spec{
		Subjects: watch.Subjects(taskEvents),
		Relevant: watch.Matching(taskEvents, map[string]string{"tenant_id": ten}),
		Settle:   s.settle,
		Coalesce: or(s.QueueCoalesce, DefaultQueueCoalesce),
		Refresh:  or(s.QueueRefresh, DefaultQueueRefresh),
		Snapshot: func(ctx context.Context) (proto.Message, error) {
			q, err := s.App.Queue(ctx, ten, agentID)
			if err != nil {
				return nil, statusOf(err)
			}
			return queueProto(q), nil
		},
	}
	return s.Watches.Run(ctx, req.GetCursor(), spec, func(u watch.Update) error {
		resp := &dispatchv1.WatchQueueResponse{Cursor: u.Cursor, Kind: u.Kind, Events: u.Events}
		if u.State != nil {
			resp.Queue = u.State.(*dispatchv1.AgentQueue)
		}
		return ss.Send(resp)
	})
}

// WatchWallboard streams the wallboard of the caller's groups (pkg/watch).
func (s *Server) WatchWallboard(req *dispatchv1.WatchWallboardRequest, ss dispatchv1.DispatchService_WatchWallboardServer) error {
	ctx := ss.Context()
	q, err := wallboardQuery(req.GetTenantId(), req.GetGroup(), req.GetLeaderId(), req.GetWithin(), req.GetTimeZone())
	if err != nil {
		return err
	}
	if _, _, err := watch.Sequence(req.GetCursor()); err != nil {
		return err
	}
	// Scope and input are checked before the stream starts.
	if _, err := s.App.Wallboard(ctx, q); err != nil {
		return statusOf(err)
	}
	spec := watch.Spec{
		Subjects: watch.Subjects(taskEvents),
		Relevant: watch.Matching(taskEvents, map[string]string{"tenant_id": q.Tenant}),
		Settle:   s.settle,
		Coalesce: or(s.WallboardCoalesce, DefaultWallboardCoalesce),
		Refresh:  or(s.WallboardRefresh, DefaultWallboardRefresh),
		Snapshot: func(ctx context.Context) (proto.Message, error) {
			w, err := s.App.Wallboard(ctx, q)
			if err != nil {
				return nil, statusOf(err)
			}
			return wallboardProto(w), nil
		},
	}
	return s.Watches.Run(ctx, req.GetCursor(), spec, func(u watch.Update) error {
		resp := &dispatchv1.WatchWallboardResponse{Cursor: u.Cursor, Kind: u.Kind, Events: u.Events}
		if u.State != nil {
			resp.Wallboard = u.State.(*dispatchv1.Wallboard)
		}
		return ss.Send(resp)
	})
}

func wallboardQuery(ten, group, leaderID string, within *durationpb.Duration, tz string) (app.WallboardQuery, error) {
	q := app.WallboardQuery{Tenant: tenant.Or(ten), Group: strings.TrimSpace(group), LeaderID: strings.TrimSpace(leaderID), TimeZone: strings.TrimSpace(tz)}
	var bad invalid.List
	if within != nil {
		if !within.IsValid() {
			bad.Add("within", "must be a valid duration")
		} else {
			d := within.AsDuration()
			q.Within = &d
		}
	}
	if err := bad.Err(); err != nil {
		return q, err
	}
	return q, app.CheckWallboard(q)
}

func presenceName(p dispatchv1.Presence) string {
	switch p {
	case dispatchv1.Presence_PRESENCE_AVAILABLE:
		return task.PresenceAvailable
	case dispatchv1.Presence_PRESENCE_ON_BREAK:
		return task.PresenceOnBreak
	case dispatchv1.Presence_PRESENCE_OFFLINE:
		return task.PresenceOffline
	}
	return ""
}

func presenceProto(state string) dispatchv1.Presence {
	switch state {
	case task.PresenceOnBreak:
		return dispatchv1.Presence_PRESENCE_ON_BREAK
	case task.PresenceOffline:
		return dispatchv1.Presence_PRESENCE_OFFLINE
	}
	return dispatchv1.Presence_PRESENCE_AVAILABLE
}

func queueProto(q app.Queue) *dispatchv1.AgentQueue {
	out := &dispatchv1.AgentQueue{Waiting: int32(q.Waiting), Presence: presenceProto(q.Agent.Presence.State)}
	for _, t := range q.Held {
		out.Held = append(out.Held, taskProto(t))
	}
	for _, t := range q.Claimable {
		out.Claimable = append(out.Claimable, taskProto(t))
	}
	return out
}

func wallboardProto(w app.Wallboard) *dispatchv1.Wallboard {
	out := &dispatchv1.Wallboard{At: timestamp(w.At), Total: groupBoardProto(w.Total, w.At)}
	for _, g := range w.Groups {
		out.Groups = append(out.Groups, groupBoardProto(g, w.At))
	}
	return out
}

func groupBoardProto(g app.GroupBoard, now time.Time) *dispatchv1.GroupBoard {
	out := &dispatchv1.GroupBoard{Group: g.Group, Waiting: int32(g.Waiting), Scheduled: int32(g.Scheduled), InProgress: int32(g.InProgress),
		NearDeadline: int32(g.Near), PastDeadline: int32(g.Past), DoneToday: int32(g.DoneToday), ClosedToday: int32(g.ClosedToday),
		Agents: &dispatchv1.AgentCounts{}}
	if !g.OldestAvailable.IsZero() {
		out.OldestWaiting = durationpb.New(max(now.Sub(g.OldestAvailable), 0))
	}
	sevs := make([]int, 0, len(g.BySeverity))
	for s := range g.BySeverity {
		sevs = append(sevs, s)
	}
	slices.Sort(sevs)
	slices.Reverse(sevs)
	for _, s := range sevs {
		out.WaitingBySeverity = append(out.WaitingBySeverity, &dispatchv1.SeverityCount{Severity: typesv1.Severity(s), Count: int32(g.BySeverity[s])})
	}
	for _, a := range g.Agents {
		out.AgentStates = append(out.AgentStates, agentStateProto(a))
		switch {
		case a.Presence.State == task.PresenceOnBreak:
			out.Agents.OnBreak++
		case a.Presence.State == task.PresenceOffline:
			out.Agents.Offline++
		case a.Held > 0:
			out.Agents.OnCall++
		default:
			out.Agents.Available++
		}
	}
	return out
}

func agentStateProto(a store.BoardAgent) *dispatchv1.AgentState {
	return &dispatchv1.AgentState{AgentId: a.ID, Presence: presenceProto(a.Presence.State), Reason: a.Presence.Reason,
		Since: timestamp(a.Presence.Since), TasksHeld: int32(a.Held)}
}
