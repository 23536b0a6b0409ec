package servicetest_test

import (
	"context"
	"fmt"
	"testing"
	"testing/fstest"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
)

// A benchmark's harness: every message published reaches the stream (past
// the wait at 1,000), Measure runs the work until its condition holds and
// counts the work's statements, not its own polling.
func TestMeasureCountsTheRunsStatements(t *testing.T) {
	const n = 1200
	pool := servicetest.Pool(t, "benchtest", fstest.MapFS{
		"001_handled.sql": {Data: []byte(`CREATE TABLE handled (id text PRIMARY KEY);`)},
	})
	js := servicetest.JetStream(t)
	pub := servicetest.NewPublisher(t, js)
	for i := range n {
		id := fmt.Sprintf("m-%d", i)
		pub.Msg(&nats.Msg{Subject: stream.SubjectVisitDue, Data: []byte(id), Header: nats.Header{jetstream.MsgIDHeader: {id}}})
	}
	pub.Flush()

	ctx := context.Background()
	cons, err := js.OrderedConsumer(ctx, stream.EventsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{stream.SubjectVisitDue}})
	require.NoError(t, err)
	// The work: one insert per message, n statements in all.
	handle := func(ctx context.Context) error {
		for {
			msgs, err := cons.Fetch(100, jetstream.FetchMaxWait(100*time.Millisecond))
			if err != nil {
				return fmt.Errorf("fetch: %w", err)
			}
			for m := range msgs.Messages() {
				if _, err := pool.Exec(ctx, `INSERT INTO handled (id) VALUES ($1)`, string(m.Data())); err != nil {
					return fmt.Errorf("insert: %w", err)
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	run := servicetest.Measure(t, pool, servicetest.Until{Query: `SELECT count(*) >= $1 FROM handled`, Args: []any{n}}, handle)

	var handled int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM handled`).Scan(&handled))
	require.Equal(t, n, handled, "every message published, once")
	require.Same(t, pool, run.Pool)
	require.Positive(t, run.Elapsed)
	require.GreaterOrEqual(t, run.Statements, int64(0), "statements counted: make test's Postgres loads pg_stat_statements (scripts/postgres.sh)")
	// Polls every 5 ms over n single-row commits would add hundreds.
	require.GreaterOrEqual(t, run.Statements, int64(n))
	require.Less(t, run.Statements, int64(n+20), "the polls left out")
}
