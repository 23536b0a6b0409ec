package app_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/storetest"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// BenchmarkClaimNextTask: 500 agents claim concurrently from a queue of
// 100,000 tasks; each claim is followed by RecordAttempt(answered), as an
// agent's desk does. It reports the claim latency (p50, p99) and the
// claims per second. Run:
//
//	go test -run '^$' -bench BenchmarkClaimNextTask -benchtime 1x ./internal/app/
func BenchmarkClaimNextTask(b *testing.B) { benchClaims(b, 500, 20_000, 0, false) }

// BenchmarkClaimNextTaskRequestID: the same, every claim carrying a
// request id of its own (ClaimNextTask.request_id: safe to retry).
func BenchmarkClaimNextTaskRequestID(b *testing.B) { benchClaims(b, 500, 20_000, 0, true) }

// BenchmarkClaimNextTaskPool32: the same with a pool of 32 connections
// (pool_max_conns=32 in the service's DATABASE_URL).
func BenchmarkClaimNextTaskPool32(b *testing.B) { benchClaims(b, 500, 20_000, 32, false) }

// BenchmarkClaimNextTaskOneAgent: the same queue worked by one agent, so
// the latency is the database's alone, without waiting for a connection.
func BenchmarkClaimNextTaskOneAgent(b *testing.B) { benchClaims(b, 1, 2_000, 0, false) }

// BenchmarkClaimNextTaskOneAgentRequestID: one agent, with request ids.
func BenchmarkClaimNextTaskOneAgentRequestID(b *testing.B) { benchClaims(b, 1, 2_000, 0, true) }

// benchClaims runs claims claims by agents agents over 100,000 tasks, with
// the service's pool, or one of conns connections when conns > 0; with
// requestIDs every claim carries a request id of its own.
func benchClaims(b *testing.B, agents, claims int, conns int32, requestIDs bool) {
	q := claimQueue(b, agents, conns)
	ctx := context.Background()
	for b.Loop() {
		var left atomic.Int64
		left.Store(int64(claims))
		lat := make([][]time.Duration, agents)
		var wg sync.WaitGroup
		start := time.Now()
		for i := range agents {
			wg.Go(func() {
				agent := fmt.Sprintf("a-%03d", i)
				for n := 0; left.Add(-1) >= 0; n++ {
					call := app.ClaimCall{Tenant: "default", AgentID: agent}
					if requestIDs {
						call.RequestID = fmt.Sprintf("%s/claim-%d", agent, n)
					}
					d, err := claimAndAnswer(ctx, q, call)
					lat[i] = append(lat[i], d)
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		all := slices.Concat(lat...)
		reportLatency(b, all)
		b.ReportMetric(float64(len(all))/elapsed.Seconds(), "claims/s")
	}
}

// BenchmarkClaimNextTaskCallCenterPace: 500 agents at a call center's
// pace: each claims a task, answers it, and claims again 30–120 s later
// (the first claims spread over the first two minutes), for
// CLAIM_PACE_DURATION (3m when unset): about 6–7 claims a second. It
// reports the claim latency (p50, p99) at that pace; the flat-out
// benchmarks above give the saturation rate.
//
//	go test -run '^$' -bench ClaimNextTaskCallCenterPace -benchtime 1x -timeout 30m ./internal/app/
func BenchmarkClaimNextTaskCallCenterPace(b *testing.B) {
	const agents = 500
	d := 3 * time.Minute
	if v := os.Getenv("CLAIM_PACE_DURATION"); v != "" {
		var err error
		d, err = time.ParseDuration(v)
		require.NoError(b, err, "CLAIM_PACE_DURATION")
	}
	q := claimQueue(b, agents, 0)
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		lat := make([][]time.Duration, agents)
		var wg sync.WaitGroup
		for i := range agents {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(i), 20261207))
				agent := fmt.Sprintf("a-%03d", i)
				wait := time.Duration(rng.Int64N(int64(2 * time.Minute)))
				for {
					select {
					case <-ctx.Done():
						return
					case <-time.After(wait):
					}
					lat[i] = append(lat[i], 0)
					dur, err := claimAndAnswer(context.WithoutCancel(ctx), q, app.ClaimCall{Tenant: "default", AgentID: agent})
					lat[i][len(lat[i])-1] = dur
					if err != nil {
						b.Error(err)
						return
					}
					wait = 30*time.Second + time.Duration(rng.Int64N(int64(90*time.Second)))
				}
			})
		}
		wg.Wait()
		cancel()
		all := slices.Concat(lat...)
		require.NotEmpty(b, all)
		reportLatency(b, all)
		b.ReportMetric(float64(len(all))/d.Seconds(), "claims/s")
	}
}

// claimAndAnswer claims the agent's next task and records it answered, as
// an agent's desk does, and returns how long the claim took.
func claimAndAnswer(ctx context.Context, q *app.App, call app.ClaimCall) (time.Duration, error) {
	t1 := time.Now()
	got, found, err := q.ClaimNext(ctx, call)
	d := time.Since(t1)
	if err != nil || !found {
		return d, fmt.Errorf("claim: found %v, err %v", found, err)
	}
	if _, err := q.RecordAttempt(ctx, app.Attempt{Tenant: "default", TaskID: got.ID, AgentID: call.AgentID,
		Disposition: typesv1.Disposition_DISPOSITION_ANSWERED}); err != nil {
		return d, fmt.Errorf("record: %w", err)
	}
	return d, nil
}

// reportLatency reports the median and 99th percentile of lat.
func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// claimQueue is a dispatch App over a fresh queue of 100,000 open phone
// tasks and agents agents, on the service's pool or one of conns
// connections when conns > 0.
func claimQueue(b *testing.B, agents int, conns int32) *app.App {
	const tasks = 100_000
	pool := storetest.Pool(b)
	if conns > 0 {
		cfg := pool.Config()
		cfg.MaxConns = conns
		bigger, err := pgxpool.NewWithConfig(context.Background(), cfg)
		require.NoError(b, err)
		b.Cleanup(bigger.Close)
		pool = bigger
	}
	ctx := context.Background()
	for i := range agents {
		a := task.Agent{ID: fmt.Sprintf("a-%03d", i), Name: "agent"}
		require.NoError(b, task.NormalizeAgent(&a))
		_, err := store.UpsertAgent(ctx, pool, a, t0)
		require.NoError(b, err)
	}
	rows := make([][]any, tasks)
	for i := range rows {
		rows[i] = []any{outbox.NewEventID(), "default", fmt.Sprintf("v-%06d", i), "CHANNEL_PHONE", t0, t0.Add(time.Duration(i%96) * time.Hour),
			"open", t0, t0, t0, int32(i % 4), i % 3}
	}
	_, err := pool.CopyFrom(ctx, pgx.Identifier{"tasks"}, []string{"id", "tenant_id", "visit_id", "channel", "due_at", "deadline",
		"status", "created_at", "available_at", "updated_at", "severity", "tier_rank"}, pgx.CopyFromRows(rows))
	require.NoError(b, err)
	_, err = pool.Exec(ctx, `ANALYZE tasks`)
	require.NoError(b, err)

	return &app.App{DB: pool, Relay: nop{}, Now: func() time.Time { return t0.Add(time.Minute) }, Lease: 15 * time.Minute,
		Routing: store.Routing{OwnerWait: 30 * time.Minute, BackupWait: 30 * time.Minute, SkillWait: 30 * time.Minute, DefaultCapacity: 20}}
}
