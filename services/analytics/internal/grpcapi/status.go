package grpcapi

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/huifang/huifang/services/analytics/internal/app"
)

// statusOf turns a use case's error into the gRPC status the API answers:
// a replica standing by (or without a consumer) cannot rebuild: UNAVAILABLE,
// so the caller retries and reaches the leader; a rebuild refused because
// the stream no longer holds the whole history: FAILED_PRECONDITION, with
// the first time the stream holds. Anything else is returned
// as it is: *invalid.Error becomes INVALID_ARGUMENT with its field
// violations, context errors keep their codes, and the rest is INTERNAL
// (pkg/grpcserver's interceptor does that).
func statusOf(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, app.ErrStandby), errors.Is(err, app.ErrNoRebuild):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, app.ErrStreamIncomplete):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return err
}
