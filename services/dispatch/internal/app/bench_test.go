package app_test

import (
	"context"
	"fmt"
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

	q := &app.App{DB: pool, Relay: nop{}, Now: func() time.Time { return t0.Add(time.Minute) }, Lease: 15 * time.Minute,
		Routing: store.Routing{OwnerWait: 30 * time.Minute, BackupWait: 30 * time.Minute, SkillWait: 30 * time.Minute, DefaultCapacity: 20}}
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
					t1 := time.Now()
					got, found, err := q.ClaimNext(ctx, call)
					lat[i] = append(lat[i], time.Since(t1))
					if err != nil || !found {
						b.Errorf("claim: found %v, err %v", found, err)
						return
					}
					if _, err := q.RecordAttempt(ctx, app.Attempt{Tenant: "default", TaskID: got.ID, AgentID: agent,
						Disposition: typesv1.Disposition_DISPOSITION_ANSWERED}); err != nil {
						b.Errorf("record: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		all := slices.Concat(lat...)
		slices.Sort(all)
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(len(all))/elapsed.Seconds(), "claims/s")
	}
}
