package auth_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"

	"github.com/huifang/huifang/pkg/auth"
)

// clock is a time the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// A caller may make a burst at once, then one request per 1/rate; the
// refusal says how long to wait; another caller, or the same subject in
// another tenant, has a bucket of its own.
func TestLimiterTokenBucketPerCaller(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	l := auth.NewLimiter(auth.RateLimit{Rate: 10, Burst: 3}, c.now)
	for i := range 3 {
		_, ok := l.Allow(agentP)
		require.True(t, ok, "request %d of the burst", i)
	}
	wait, ok := l.Allow(agentP)
	require.False(t, ok, "the bucket is empty")
	require.Equal(t, 100*time.Millisecond, wait, "one token every 1/10 s")

	_, ok = l.Allow(directorP)
	require.True(t, ok, "another caller")
	other := agentP
	other.Tenant = "globex"
	_, ok = l.Allow(other)
	require.True(t, ok, "the same subject in another tenant")

	c.add(50 * time.Millisecond)
	wait, ok = l.Allow(agentP)
	require.False(t, ok)
	require.Equal(t, 50*time.Millisecond, wait, "a refused request takes nothing")
	c.add(50 * time.Millisecond)
	_, ok = l.Allow(agentP)
	require.True(t, ok)
}

// A rate of 0 limits nothing.
func TestLimiterOff(t *testing.T) {
	l := auth.NewLimiter(auth.RateLimit{}, nil)
	for range 1000 {
		_, ok := l.Allow(agentP)
		require.True(t, ok)
	}
	require.Zero(t, l.Callers())
}

// The buckets of idle callers are dropped: a flood of callers that each
// call once leaves the limiter holding a bounded number of buckets.
func TestLimiterForgetsIdleCallers(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	l := auth.NewLimiter(auth.RateLimit{Rate: 50, Burst: 100}, c.now) // a bucket fills in 2 s
	for i := range 10_000 {
		p := agentP
		p.Subject = fmt.Sprint("u-", i)
		_, ok := l.Allow(p)
		require.True(t, ok)
		if i%1000 == 999 {
			c.add(3 * time.Second) // the callers so far are idle
		}
	}
	require.LessOrEqual(t, l.Callers(), 2048, "idle callers were dropped")
	require.Positive(t, l.Callers())

	// A caller kept while active is still held to its bucket.
	for range 100 {
		l.Allow(directorP)
	}
	_, ok := l.Allow(directorP)
	require.False(t, ok)
}

// The guard holds gRPC calls to the caller's rate: ResourceExhausted with a
// RetryInfo beyond it, before the handler runs; health checks are not
// counted.
func TestGuardRateLimitsCalls(t *testing.T) {
	g := auth.NewGuard(quiet(), verifier{agentP})
	g.SetTable(auth.Table{dispatchv1.DispatchService_ListTasks_FullMethodName: listTasks})
	g.SetRateLimit(auth.RateLimit{Rate: 0.001, Burst: 2})
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer x"))
	info := &grpc.UnaryServerInfo{FullMethod: dispatchv1.DispatchService_ListTasks_FullMethodName}
	calls := 0
	handler := func(context.Context, any) (any, error) { calls++; return &dispatchv1.ListTasksResponse{}, nil }
	for range 2 {
		_, err := g.Unary(ctx, &dispatchv1.ListTasksRequest{}, info, handler)
		require.NoError(t, err)
	}
	_, err := g.Unary(ctx, &dispatchv1.ListTasksRequest{}, info, handler)
	st := status.Convert(err)
	require.Equal(t, codes.ResourceExhausted, st.Code())
	require.Contains(t, st.Message(), "rate limit: at most 0.001 requests a second per caller (bursts of 2); retry in ")
	require.Len(t, st.Details(), 1)
	require.Positive(t, st.Details()[0].(*errdetails.RetryInfo).GetRetryDelay().AsDuration())
	require.Equal(t, 2, calls, "the refused call did not run")

	health := &grpc.UnaryServerInfo{FullMethod: "/grpc.health.v1.Health/Check"}
	_, err = g.Unary(context.Background(), nil, health, handler)
	require.NoError(t, err, "health checks need no token and are not limited")

	wait, ok := g.Admit(agentP)
	require.False(t, ok, "the webhook asks the same bucket")
	require.Positive(t, wait)
	g.SetRateLimit(auth.RateLimit{})
	_, ok = g.Admit(agentP)
	require.True(t, ok, "RATE_LIMIT=0 lifts the limit")
}

// verifier takes every token for its principal.
type verifier struct{ p auth.Principal }

func (v verifier) Verify(context.Context, string) (auth.Principal, error) { return v.p, nil }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
