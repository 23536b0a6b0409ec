package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/huifang/huifang/scripts/internal/stack"
)

// BenchmarkIngressToTask measures the pipeline's throughput end to end:
// b.N completed repairs published on the ingress subject at once, timed
// until dispatch holds a task for each (intake → ServiceCompleted →
// scheduler plans and fires the instant policy's visit → VisitDue →
// dispatch). Each event crosses three services, three consumers with their
// inboxes and three outbox relays. It runs on one NATS server with one
// replica of each service, the same with every consumer applying one
// message per transaction and every relay publishing one message at a
// time (as before batching), and on the compose topology (three-node
// JetStream cluster, R3 streams, two scheduler and two dispatch replicas).
//
//	cd scripts && go test -run '^$' -bench IngressToTask -benchtime 2000x ./e2e/
func BenchmarkIngressToTask(b *testing.B) {
	for _, bb := range []struct {
		name string
		topo topology
	}{
		{"single", topology{}},
		{"single/one-by-one", topology{env: everyService("CONSUMER_BATCH=1", "OUTBOX_ATOMIC=false")}},
		{"cluster", topology{cluster: 3, replicas: map[string]int{"scheduler": 2, "dispatch": 2}}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			s := setupWith(b, bb.topo)
			s.prepare()
			run := time.Now().UnixNano()
			tasks := func() int {
				var n int
				if err := s.db.QueryRow(b.Context(), `SELECT count(*) FROM dispatch.tasks`).Scan(&n); err != nil {
					b.Fatal(err)
				}
				return n
			}
			before := tasks()
			pg := s.pgCounters(b)
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				s.publish(ingress(fmt.Sprintf("bench-%d-%d", run, i), "repair", fmt.Sprintf("cb-%d", i), "客户", "+8613800138000", time.Now()))
			}
			published := time.Since(start)
			waitFor(b, 10*time.Minute, fmt.Sprintf("%d tasks", b.N), func() (int, bool, error) {
				n := tasks() - before
				return n, n >= b.N, nil
			})
			elapsed := time.Since(start)
			b.StopTimer()
			// Postgres reports a backend's counters when its transaction
			// ends, at most once a second: wait until the rows written
			// have not moved for longer than that (the services' loops
			// keep committing read-only transactions, so commits do).
			last, moved := s.pgCounters(b), time.Now()
			used := waitFor(b, time.Minute, "Postgres's counters to settle", func() (pgCounters, bool, error) {
				now := s.pgCounters(b)
				if now.rows != last.rows {
					moved = time.Now()
				}
				last = now
				return now.minus(pg), time.Since(moved) > 1500*time.Millisecond, nil
			})
			per := func(v int64) float64 { return float64(v) / float64(b.N) }
			b.ReportMetric(per(used.commits), "commits/event")
			b.ReportMetric(per(used.rows), "rows/event")
			b.ReportMetric(per(used.walBytes), "WAL-bytes/event")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(b.N)/published.Seconds(), "published/s")
		})
	}
}

// everyService gives each of the five services the variables env.
func everyService(env ...string) map[string][]string {
	out := map[string][]string{}
	for _, svc := range stack.Services() {
		out[svc] = env
	}
	return out
}

// pgCounters are what Postgres counts of the work done: commits and rows
// written in the test's database, and WAL bytes of the whole server (the
// test's Postgres serves nothing else while a benchmark runs).
type pgCounters struct{ commits, rows, walBytes int64 }

func (c pgCounters) minus(o pgCounters) pgCounters {
	return pgCounters{c.commits - o.commits, c.rows - o.rows, c.walBytes - o.walBytes}
}

func (s *system) pgCounters(b *testing.B) pgCounters {
	b.Helper()
	var c pgCounters
	err := s.db.QueryRow(b.Context(), `SELECT d.xact_commit, d.tup_inserted + d.tup_updated + d.tup_deleted, w.wal_bytes::bigint
FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = current_database()`).Scan(&c.commits, &c.rows, &c.walBytes)
	if err != nil {
		b.Fatal(err)
	}
	return c
}
