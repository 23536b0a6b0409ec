package servicetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

// The throughput benchmarks of the services' consumers share one shape:
// publish the events to an embedded NATS first (Publisher), then run the
// real consumer until the database shows it handled them all (Measure),
// counting the SQL statements the database ran meanwhile (Statements), and
// report events/s and statements/event (Run.Report).

// PollComment marks a benchmark's own queries (its polling, its counting):
// Statements leaves out the statements that carry it.
const PollComment = "/* bench:poll */"

// Publisher publishes to JetStream without waiting for each
// acknowledgement: it waits for all of them every 1,000 messages and at
// Flush.
type Publisher struct {
	tb      testing.TB
	js      jetstream.JetStream
	pending int
}

// NewPublisher publishes to js; a failure fails tb.
func NewPublisher(tb testing.TB, js jetstream.JetStream) *Publisher {
	return &Publisher{tb: tb, js: js}
}

// Proto publishes ev on subject with JetStream message id id.
func (p *Publisher) Proto(subject, id string, ev proto.Message) {
	p.tb.Helper()
	data, err := proto.Marshal(ev)
	if err != nil {
		p.tb.Fatalf("servicetest: marshal %s: %v", id, err)
	}
	p.Msg(&nats.Msg{Subject: subject, Data: data, Header: nats.Header{jetstream.MsgIDHeader: {id}}})
}

// Msg publishes m.
func (p *Publisher) Msg(m *nats.Msg) {
	p.tb.Helper()
	if _, err := p.js.PublishMsgAsync(m); err != nil {
		p.tb.Fatalf("servicetest: publish on %s: %v", m.Subject, err)
	}
	if p.pending++; p.pending == 1000 {
		p.Flush()
	}
}

// Flush waits until JetStream has acknowledged every message published.
func (p *Publisher) Flush() {
	p.tb.Helper()
	select {
	case <-p.js.PublishAsyncComplete():
		p.pending = 0
	case <-time.After(time.Minute):
		p.tb.Fatalf("servicetest: publishing did not complete within a minute")
	}
}

// Statements counts the SQL statements run in a pool's database, from
// pg_stat_statements (scripts/postgres.sh preloads it), leaving out those
// that carry PollComment.
type Statements struct {
	pool    *pgxpool.Pool
	counted bool
}

// CountStatements creates pg_stat_statements in pool's database (in
// schema public) where it can; where the server does not load it the
// statements are not counted, and the benchmark says so in its log.
func CountStatements(tb testing.TB, pool *pgxpool.Pool) *Statements {
	tb.Helper()
	s := &Statements{pool: pool}
	if _, err := pool.Exec(context.Background(), `CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA public `+PollComment); err != nil {
		tb.Logf("statements not counted (pg_stat_statements): %v", err)
		return s
	}
	if _, err := s.count(); err != nil {
		tb.Logf("statements not counted (pg_stat_statements is not loaded): %v", err)
		return s
	}
	s.counted = true
	return s
}

// Counted reports whether the statements are counted.
func (s *Statements) Counted() bool { return s.counted }

// Count is how many statements the database ran so far, -1 when they are
// not counted.
func (s *Statements) Count(tb testing.TB) int64 {
	tb.Helper()
	if !s.counted {
		return -1
	}
	n, err := s.count()
	if err != nil {
		tb.Fatalf("servicetest: count statements: %v", err)
	}
	return n
}

func (s *Statements) count() (int64, error) {
	var n int64
	err := s.pool.QueryRow(context.Background(), `SELECT coalesce(sum(calls), 0)::bigint `+PollComment+` FROM public.pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT LIKE '%bench:poll%'`).Scan(&n)
	return n, err
}

// LogTop logs the n statements the database ran most, with their calls.
func (s *Statements) LogTop(tb testing.TB, n int) {
	tb.Helper()
	if !s.counted {
		return
	}
	rows, err := s.pool.Query(context.Background(), `SELECT calls, left(regexp_replace(query, '\s+', ' ', 'g'), 110) `+PollComment+`
FROM public.pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT LIKE '%bench:poll%'
ORDER BY calls DESC LIMIT $1`, n)
	if err != nil {
		tb.Fatalf("servicetest: top statements: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var calls int64
		var q string
		if err := rows.Scan(&calls, &q); err != nil {
			tb.Fatalf("servicetest: top statements: %v", err)
		}
		tb.Logf("%7d  %s", calls, q)
	}
	if err := rows.Err(); err != nil {
		tb.Fatalf("servicetest: top statements: %v", err)
	}
}

// Until is what a benchmark's run waits for: an SQL query returning one
// boolean, true once the work is done (Measure adds PollComment to it).
type Until struct {
	Query string
	Args  []any
	// Also, when set, must hold too (checked once the query does): for
	// instance Acknowledged, for a consumer that keeps no inbox entries.
	Also func(ctx context.Context) bool
}

// Acknowledged is true once the consumer durable of the stream named
// streamName acknowledged everything the stream holds now: what an
// idempotent consumer (no inbox entries) has handled.
func Acknowledged(tb testing.TB, js jetstream.JetStream, streamName, durable string) func(context.Context) bool {
	tb.Helper()
	st, err := js.Stream(context.Background(), streamName)
	if err != nil {
		tb.Fatalf("servicetest: stream %s: %v", streamName, err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		tb.Fatalf("servicetest: stream %s: %v", streamName, err)
	}
	last := info.State.LastSeq
	return func(ctx context.Context) bool {
		cons, err := js.Consumer(ctx, streamName, durable)
		if err != nil {
			return false // not created yet
		}
		ci, err := cons.Info(ctx)
		return err == nil && ci.AckFloor.Stream >= last && ci.NumAckPending == 0
	}
}

// InboxHolds waits until the inbox holds n messages of the consumer named
// durable.
func InboxHolds(durable string, n int) Until {
	return Until{Query: `SELECT count(*) >= $2 FROM inbox WHERE consumer = $1`, Args: []any{durable, n}}
}

// Run is one measured run: the database it worked in (for the checks that
// follow), how long the work took, and the statements the database ran
// meanwhile (-1 when not counted).
type Run struct {
	Pool       *pgxpool.Pool
	Elapsed    time.Duration
	Statements int64
	stmts      *Statements
}

// Meter measures one run from Start to Stop: its time and the statements
// its database ran.
type Meter struct {
	pool   *pgxpool.Pool
	stmts  *Statements
	before int64
	start  time.Time
}

// Start counts the statements of pool's database (CountStatements) and
// starts the clock.
func Start(tb testing.TB, pool *pgxpool.Pool) *Meter {
	tb.Helper()
	m := &Meter{pool: pool, stmts: CountStatements(tb, pool)}
	m.before = m.stmts.Count(tb)
	m.start = time.Now()
	return m
}

// Stop is the run since Start: its time and its statements.
func (m *Meter) Stop(tb testing.TB) Run {
	tb.Helper()
	r := Run{Pool: m.pool, Elapsed: time.Since(m.start), Statements: -1, stmts: m.stmts}
	if m.stmts.Counted() {
		r.Statements = m.stmts.Count(tb) - m.before
	}
	return r
}

// Measure starts runs (a consumer's Run, a loop's, a relay's), polls
// until every 5 ms (for up to 10 minutes), stops them and waits for them
// to return: each must return nil or context.Canceled. The run measured
// ends at the first poll that found until true.
func Measure(tb testing.TB, pool *pgxpool.Pool, until Until, runs ...func(context.Context) error) Run {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := Start(tb, pool)
	done := make(chan error, len(runs))
	for _, run := range runs {
		go func() { done <- run(ctx) }()
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Minute)
	for ok := false; !ok; {
		select {
		case <-tick.C:
		case err := <-done:
			tb.Fatalf("servicetest: a run returned before the work was done: %v", err)
		case <-deadline:
			tb.Fatalf("servicetest: not done within 10 minutes: %s %v", until.Query, until.Args)
		}
		if err := pool.QueryRow(ctx, until.Query+" "+PollComment, until.Args...).Scan(&ok); err != nil {
			tb.Fatalf("servicetest: poll %s: %v", until.Query, err)
		}
		ok = ok && (until.Also == nil || until.Also(ctx))
	}
	r := m.Stop(tb)
	cancel()
	for range runs {
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			tb.Fatalf("servicetest: run: %v", err)
		}
	}
	return r
}

// Report reports the run's events/s for events events and, when the
// statements were counted, its statements/event; with more than one
// event it logs the 15 statements the database ran most.
func (r Run) Report(b *testing.B, events int) {
	b.Helper()
	b.ReportMetric(float64(events)/r.Elapsed.Seconds(), "events/s")
	if r.Statements >= 0 {
		b.ReportMetric(float64(r.Statements)/float64(events), "statements/event")
		if events > 1 && r.stmts != nil {
			r.stmts.LogTop(b, 15)
		}
	}
}
