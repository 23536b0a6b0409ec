package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

func TestStatusOf(t *testing.T) {
	require.NoError(t, statusOf(nil))
	bad := invalid.New("f", "is required")
	require.Same(t, bad, statusOf(bad), "invalid input is left to pkg/grpcserver")
	for err, want := range map[error]codes.Code{
		fmt.Errorf("visit v: %w", store.ErrNotFound):  codes.NotFound,
		fmt.Errorf("policy p: %w", policy.ErrForeign): codes.NotFound,
		fmt.Errorf("tenant t: %w", store.ErrConflict): codes.AlreadyExists,
		policy.ErrBuiltin: codes.FailedPrecondition,
		fmt.Errorf("%w: it is due", visit.ErrState): codes.FailedPrecondition,
	} {
		st, ok := status.FromError(statusOf(err))
		require.True(t, ok, err)
		require.Equal(t, want, st.Code(), err)
		require.Equal(t, err.Error(), st.Message())
	}
	other := errors.New("boom")
	require.Same(t, other, statusOf(other), "unknown: Internal, logged by pkg/grpcserver")
	require.Equal(t, context.Canceled, statusOf(context.Canceled))
}
