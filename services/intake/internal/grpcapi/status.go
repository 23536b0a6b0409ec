package grpcapi

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/huifang/huifang/services/intake/internal/app"
)

// statusOf turns the app's errors into gRPC statuses. *invalid.Error passes
// as it is (the server's interceptor answers InvalidArgument with the field
// violations), and so does any other error (Internal, logged there).
func statusOf(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, app.ErrConflict):
		return status.Error(codes.Aborted, app.ErrConflict.Error())
	case errors.Is(err, app.ErrBusy):
		return status.Error(codes.Aborted, "a concurrent change got in the way; retry: "+err.Error())
	case errors.Is(err, app.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, app.ErrAlreadyReplayed):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return err
}
