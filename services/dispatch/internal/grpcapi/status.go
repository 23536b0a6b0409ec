package grpcapi

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/dispatch/internal/contacts"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// statusOf turns dispatch's domain and store errors into gRPC statuses: the
// one place where that happens (invalid input is mapped by grpcserver, so
// an *invalid.Error is returned as it is).
func statusOf(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrAgentNotFound):
		return status.Error(codes.NotFound, "no such agent in the tenant; register it with UpsertAgent")
	case errors.Is(err, store.ErrTaskNotFound):
		return status.Error(codes.NotFound, "no such task in the tenant")
	case errors.Is(err, store.ErrMessageNotFound):
		return status.Error(codes.NotFound, "no message with that provider id")
	case errors.Is(err, task.ErrParentNotFound):
		return invalid.New("unit.parent_id", "must name an existing org unit")
	case errors.Is(err, task.ErrCycle):
		return invalid.New("unit.parent_id", "must not be the unit or one below it")
	case errors.Is(err, task.ErrInactive):
		return status.Error(codes.FailedPrecondition, "the agent is inactive")
	case errors.Is(err, task.ErrOnBreak):
		return status.Error(codes.FailedPrecondition, "the agent is on a break: set its presence to PRESENCE_AVAILABLE (SetAgentPresence) to take tasks")
	case errors.Is(err, task.ErrOffline):
		return status.Error(codes.FailedPrecondition, "the agent is offline: set its presence to PRESENCE_AVAILABLE (SetAgentPresence) to take tasks")
	case errors.Is(err, task.ErrPresence):
		return status.Error(codes.PermissionDenied, "permission denied: agent_id: a leader may set another agent only offline, and only an agent of the groups it oversees")
	case errors.Is(err, task.ErrOffShift):
		return status.Error(codes.FailedPrecondition, "the agent is off shift")
	case errors.Is(err, task.ErrAtCapacity):
		return status.Error(codes.ResourceExhausted, "the agent holds as many tasks as its capacity; finish or release one")
	case errors.Is(err, task.ErrClaimedAgain):
		return status.Error(codes.FailedPrecondition, "the task was claimed again after this claim's lease ran out; claim a task anew")
	case errors.Is(err, task.ErrNotHolder):
		return status.Error(codes.FailedPrecondition, "the agent does not hold the task")
	case errors.Is(err, task.ErrClosed):
		return status.Error(codes.FailedPrecondition, "the task is closed")
	case errors.Is(err, task.ErrAutomatic):
		return status.Error(codes.FailedPrecondition, "the task is sent by dispatch itself (SMS or email)")
	case errors.Is(err, task.ErrNotLeader):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, contacts.ErrGone):
		return status.Error(codes.NotFound, "intake holds no such contact of the task's customer (erased, or none for the channel)")
	case errors.Is(err, contacts.ErrUnavailable):
		return status.Error(codes.Unavailable, "the contact could not be had from intake for the moment; try again: "+err.Error())
	}
	return err
}
