package e2e

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkIngressToTask measures the pipeline's throughput end to end:
// b.N completed repairs published on the ingress subject at once, timed
// until dispatch holds a task for each (intake → ServiceCompleted →
// scheduler plans and fires the instant policy's visit → VisitDue →
// dispatch). Each event crosses three services, three consumers with their
// inboxes and three outbox relays. It runs on one NATS server with one
// replica of each service, and on the compose topology (three-node
// JetStream cluster, R3 streams, two scheduler and two dispatch replicas).
//
//	cd scripts && go test -run '^$' -bench IngressToTask -benchtime 2000x ./e2e/
func BenchmarkIngressToTask(b *testing.B) {
	for _, bb := range []struct {
		name string
		topo topology
	}{
		{"single", topology{}},
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
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(b.N)/published.Seconds(), "published/s")
		})
	}
}
