package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// Raw are the limits of the parts under Huifang on this machine, with the
// settings Huifang runs them with: JetStream file storage synced on every
// write, Postgres with fsync and synchronous commits.
type Raw struct {
	// JetStream publishes per second: one message at a time with up to 256
	// acks pending, and atomic batches of 100 and of 500 messages.
	JetStreamSingle   float64 `json:"jetstream_single_msgs_per_s"`
	JetStreamBatch100 float64 `json:"jetstream_atomic_batch_100_msgs_per_s"`
	JetStreamBatch500 float64 `json:"jetstream_atomic_batch_500_msgs_per_s"`
	// Postgres rows inserted per second by 4 clients: one row per commit,
	// and 500 rows per commit.
	PostgresSingle  float64 `json:"postgres_single_row_commits_rows_per_s"`
	PostgresBatched float64 `json:"postgres_500_row_commits_rows_per_s"`
}

// rawPayload is about the size of a ServiceCompleted event.
var rawPayload = make([]byte, 600)

// measureJetStream publishes n messages of each kind to a stream of its own
// on the server of url, created as Huifang's streams are (file storage,
// atomic batches allowed) and deleted after.
func measureJetStream(ctx context.Context, url string, n int) (single, b100, b500 float64, err error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("raw jetstream: connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(256))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("raw jetstream: %w", err)
	}
	const name = "HUIFANG_BENCH_RAW"
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: name, Subjects: []string{"huifang.bench.raw.>"}, Storage: jetstream.FileStorage, AllowAtomicPublish: true,
	}); err != nil {
		return 0, 0, 0, fmt.Errorf("raw jetstream: create stream: %w", err)
	}
	defer func() { _ = js.DeleteStream(context.WithoutCancel(ctx), name) }()

	start := time.Now()
	for i := range n {
		msg := &nats.Msg{Subject: "huifang.bench.raw.single", Data: rawPayload, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, "s-"+strconv.Itoa(i))
		// A full window waits for acks (on a busy machine longer than the
		// default 200 ms) rather than failing the publish.
		if _, err := js.PublishMsgAsync(msg, jetstream.WithStallWait(time.Minute)); err != nil {
			return 0, 0, 0, fmt.Errorf("raw jetstream: publish: %w", err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, 0, 0, fmt.Errorf("raw jetstream: acks: %w", ctx.Err())
	}
	single = float64(n) / time.Since(start).Seconds()

	batched := func(size int) (float64, error) {
		start := time.Now()
		for i := 0; i < n; i += size {
			msgs := make([]*nats.Msg, 0, size)
			for j := i; j < min(i+size, n); j++ {
				msg := &nats.Msg{Subject: "huifang.bench.raw.batch", Data: rawPayload, Header: nats.Header{}}
				msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("b%d-%d", size, j))
				msgs = append(msgs, msg)
			}
			if _, err := jetstreamext.PublishMsgBatch(ctx, js, msgs); err != nil {
				return 0, fmt.Errorf("raw jetstream: atomic batch of %d: %w", size, err)
			}
		}
		return float64(n) / time.Since(start).Seconds(), nil
	}
	if b100, err = batched(100); err != nil {
		return 0, 0, 0, err
	}
	if b500, err = batched(500); err != nil {
		return 0, 0, 0, err
	}
	return single, b100, b500, nil
}

// measurePostgres inserts rows into a table of its own in the database of
// dbURL (dropped after) from 4 clients: single rows, each its own commit,
// and 500 rows per commit.
func measurePostgres(ctx context.Context, dbURL string, singleRows, batchedRows int) (single, batched float64, err error) {
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return 0, 0, fmt.Errorf("raw postgres: %w", err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE huifang_bench_raw (id bigserial PRIMARY KEY, tenant_id text NOT NULL,
  payload bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, 0, fmt.Errorf("raw postgres: create table: %w", err)
	}
	defer func() { _, _ = pool.Exec(context.WithoutCancel(ctx), `DROP TABLE huifang_bench_raw`) }()

	const clients = 4
	parallel := func(rows, perCommit int) (float64, error) {
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			first error
		)
		start := time.Now()
		for c := range clients {
			wg.Go(func() {
				tenants := make([]string, perCommit)
				payloads := make([][]byte, perCommit)
				for i := range perCommit {
					tenants[i], payloads[i] = "t"+strconv.Itoa(c), rawPayload
				}
				for done := 0; done < rows/clients; done += perCommit {
					var err error
					if perCommit == 1 {
						_, err = pool.Exec(ctx, `INSERT INTO huifang_bench_raw (tenant_id, payload) VALUES ($1, $2)`, tenants[0], payloads[0])
					} else {
						err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
							_, err := tx.Exec(ctx, `INSERT INTO huifang_bench_raw (tenant_id, payload) SELECT * FROM unnest($1::text[], $2::bytea[])`, tenants, payloads)
							return err
						})
					}
					if err != nil {
						mu.Lock()
						first = cmpOr(first, fmt.Errorf("raw postgres: insert: %w", err))
						mu.Unlock()
						return
					}
				}
			})
		}
		wg.Wait()
		return float64(rows) / time.Since(start).Seconds(), first
	}
	if single, err = parallel(singleRows, 1); err != nil {
		return 0, 0, err
	}
	if batched, err = parallel(batchedRows, 500); err != nil {
		return 0, 0, err
	}
	return single, batched, nil
}

// cmpOr is the first non-nil error.
func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
