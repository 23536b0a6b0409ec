package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	watchv1 "github.com/huifang/huifang/proto/huifang/watch/v1"

	"github.com/huifang/huifang/pkg/issuer"
)

// nextQueue reads the next message of a queue watch that is not a heartbeat.
func nextQueue(t *testing.T, q dispatchv1.DispatchService_WatchQueueClient) *dispatchv1.WatchQueueResponse {
	t.Helper()
	for {
		m, err := q.Recv()
		require.NoError(t, err)
		if m.GetKind() != watchv1.Kind_KIND_HEARTBEAT {
			return m
		}
	}
}

// TestWatchQueueAcrossARestart runs the system with each service on its
// own NATS user (its permissions only): an agent's queue watch gets the
// snapshot, then the task a completed service made (ingress → intake →
// scheduler → dispatch); dispatch stops (SIGTERM: the stream ends
// UNAVAILABLE at once, the process exits cleanly), a service completes
// while it is down, and the watch resumed from its cursor on the restarted
// dispatch gets the visit that fell due meanwhile and its task: nothing lost.
func TestWatchQueueAcrossARestart(t *testing.T) {
	s := setupWith(t, topology{natsUsers: true})
	s.prepare()
	ctx, err := s.issuer.Context(t.Context(), issuer.Staff(tenant, agent))
	require.NoError(t, err)

	q, err := s.dispatch.WatchQueue(ctx, &dispatchv1.WatchQueueRequest{})
	require.NoError(t, err)
	first := nextQueue(t, q)
	require.Equal(t, watchv1.Kind_KIND_SNAPSHOT, first.GetKind())
	require.Zero(t, first.GetQueue().GetWaiting())

	s.publish(ingress("e-watch-1", "repair", "c-w1", "孙丽", "+8613600136001", time.Now()))
	var last *dispatchv1.WatchQueueResponse
	for last == nil || last.GetQueue().GetWaiting() < 1 {
		last = nextQueue(t, q)
		require.Equal(t, watchv1.Kind_KIND_CHANGE, last.GetKind())
	}
	require.Equal(t, "孙*", last.GetQueue().GetClaimable()[0].GetCustomer().GetNameMasked(), "masked as everywhere")

	stopCtx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	stopped := time.Now()
	require.NoError(t, s.st.Stop(stopCtx, "dispatch"))
	require.Less(t, time.Since(stopped), 8*time.Second, "the watches drained: gRPC did not wait out its grace")
	_, err = q.Recv()
	for err == nil {
		_, err = q.Recv()
	}
	require.Contains(t, []codes.Code{codes.Unavailable, codes.Canceled}, status.Code(err), "%v", err)

	s.publish(ingress("e-watch-2", "repair", "c-w2", "周敏", "+8613600136002", time.Now()))
	// The scheduler fires the visit while dispatch is down.
	waitFor(t, taskDeadline, "the second visit due on the events stream", func() (bool, bool, error) {
		msgs, err := s.readMessages("HUIFANG_EVENTS", "huifang.events.visit.due")
		return len(msgs) >= 2, len(msgs) >= 2, err
	})
	require.NoError(t, s.st.StartService(stopCtx, "dispatch"))

	resumed := waitFor(t, taskDeadline, "the resumed watch", func() (*dispatchv1.WatchQueueResponse, bool, error) {
		q, err := s.dispatch.WatchQueue(ctx, &dispatchv1.WatchQueueRequest{Cursor: last.GetCursor()})
		if err != nil {
			return nil, false, err
		}
		m, err := q.Recv()
		if err != nil {
			return nil, false, err
		}
		return m, m.GetQueue().GetWaiting() == 2, nil
	})
	require.Equal(t, watchv1.Kind_KIND_SNAPSHOT, resumed.GetKind())
	var subjects []string
	for _, ev := range resumed.GetEvents() {
		subjects = append(subjects, ev.GetSubject())
	}
	require.Contains(t, subjects, "huifang.events.visit.due", "the visit that fell due while dispatch was down")
}
