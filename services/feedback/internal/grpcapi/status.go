package grpcapi

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/feedback/internal/app"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/improvement"
)

// statusOf turns the app's refusals into gRPC statuses, with the app's
// words: the one place where that happens. Bad input (*invalid.Error)
// passes as it is: pkg/grpcserver makes it InvalidArgument with its field
// violations; so do other errors, which become Internal there.
func statusOf(err error) error {
	if err == nil {
		return nil
	}
	if _, bad := invalid.As(err); bad {
		return err
	}
	var se *complaint.StateError
	switch {
	case errors.Is(err, app.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, app.ErrAlreadyLogged):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, improvement.ErrCarriedOut):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.As(err, &se):
		return status.Error(codes.FailedPrecondition, se.Error())
	}
	return err
}
