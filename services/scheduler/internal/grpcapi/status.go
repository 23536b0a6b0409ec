package grpcapi

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/change"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

// statusOf turns the use cases' errors into gRPC status errors: the one
// place this happens. Invalid input (*invalid.Error) is returned as it is
// (pkg/grpcserver makes it InvalidArgument with the field violations);
// anything unknown is returned as it is too (Internal, logged).
func statusOf(err error) error {
	if _, ok := invalid.As(err); ok {
		return err
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound), errors.Is(err, policy.ErrForeign):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, store.ErrConflict):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, policy.ErrBuiltin), errors.Is(err, visit.ErrState),
		errors.Is(err, app.ErrApprovalRequired), errors.Is(err, change.ErrStale), errors.Is(err, change.ErrDecided):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, change.ErrOwnProposal):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, app.ErrBusy):
		return status.Error(codes.ResourceExhausted, err.Error())
	}
	return err
}
