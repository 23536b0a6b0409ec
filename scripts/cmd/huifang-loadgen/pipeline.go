package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/scripts/internal/load"
)

// publish hands the generator's events to JetStream asynchronously until
// -n or -d is reached or ctx ends: paced by a token bucket at -rate (none
// at 0), with at most -max-pending awaiting their acks (a publish waits up
// to -ack-timeout for a free slot). It stops early, with an error, when the
// last maxConsecutiveFailures publishes all failed.
func publish(ctx context.Context, js jetstream.JetStream, gen *load.Generator, tr *tracker, cfg config) error {
	var lim *rate.Limiter
	if cfg.rate > 0 {
		// A burst of 10 ms worth keeps the pace when a wake-up comes late.
		lim = rate.NewLimiter(rate.Limit(cfg.rate), max(1, int(cfg.rate/100)))
	}
	start := time.Now()
	for i := 0; cfg.events == 0 || i < cfg.events; i++ {
		if cfg.duration > 0 && time.Since(start) >= cfg.duration {
			return nil
		}
		if lim != nil {
			if err := lim.Wait(ctx); err != nil {
				return nil // interrupted
			}
		} else if ctx.Err() != nil {
			return nil
		}
		if n, top := tr.consecutiveFailures(); n >= maxConsecutiveFailures {
			return fmt.Errorf("stopped: the last %d publishes all failed (%s)", n, top)
		}
		e := gen.Next()
		msg := &nats.Msg{Subject: stream.SubjectIngressServiceCompleted, Data: e.Payload, Header: nats.Header{}}
		msg.Header.Set(stream.HeaderContentType, stream.ContentTypeJSON)
		tr.sending(e, msg, time.Now())
		if _, err := js.PublishMsgAsync(msg, jetstream.WithStallWait(cfg.ackTimeout)); err != nil {
			tr.fail(msg, err)
			if errors.Is(err, nats.ErrConnectionClosed) {
				return fmt.Errorf("publish: %w", err)
			}
		}
	}
	return nil
}

// observe follows the events the run's events cause and intake's dead
// letters, from now on, with ordered consumers (no durable state on the
// server, no message lost to a slow reader). The returned function stops them.
func observe(ctx context.Context, js jetstream.JetStream, tr *tracker) (func(), error) {
	var stops []func()
	stop := func() {
		for _, s := range stops {
			s()
		}
	}
	for _, c := range []struct {
		stream   string
		subjects []string
	}{
		{stream.EventsStream, []string{stream.SubjectServiceCompleted, stream.SubjectVisitPlanned, stream.SubjectVisitDue}},
		{stream.DLQStream, []string{stream.DeadLetterSubject("intake")}},
	} {
		cons, err := js.OrderedConsumer(ctx, c.stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: c.subjects, DeliverPolicy: jetstream.DeliverNewPolicy,
		})
		if err == nil {
			var cc jetstream.ConsumeContext
			cc, err = cons.Consume(func(m jetstream.Msg) { tr.event(m.Subject(), m.Headers(), m.Data(), time.Now()) })
			if err == nil {
				stops = append(stops, cc.Stop)
				continue
			}
		}
		stop()
		return nil, fmt.Errorf("follow %s on %s (the NATS user needs to read Huifang's streams): %w", strings.Join(c.subjects, ", "), c.stream, err)
	}
	return stop, nil
}

// settle waits, after the last ack, until the tracker says the pipeline
// has done all it will (tracker.settled), at most wait. It says how it ended.
func settle(ctx context.Context, tr *tracker, wait time.Duration, tasks bool) string {
	if wait == 0 {
		return "skipped"
	}
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		now := time.Now()
		if tr.settled(now, settleQuiet, tasks) {
			return "settled"
		}
		if now.After(deadline) {
			return "timeout"
		}
		select {
		case <-ctx.Done():
			return "interrupted"
		case <-tick.C:
		}
	}
}

// settleQuiet is how long nothing must move before the run counts as settled:
// a service's visits are planned shortly after its ServiceCompleted.
const settleQuiet = 2 * time.Second

// taskPoller reads the tasks dispatch made of the run's fired visits.
type taskPoller struct {
	db *pgxpool.Pool
	tr *tracker
}

func (p *taskPoller) close() { p.db.Close() }

// run polls every interval until ctx ends; it logs a failing poll once per
// distinct error.
func (p *taskPoller) run(ctx context.Context, log *slog.Logger, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	last := ""
	for {
		if err := p.poll(ctx); err != nil && ctx.Err() == nil && err.Error() != last {
			last = err.Error()
			log.Warn("polling dispatch.tasks failed; trying again", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// pollBatch bounds the visits one poll asks about.
const pollBatch = 5000

// poll looks up the tasks of the fired visits that have none yet, by
// dispatch's unique (tenant_id, visit_id).
func (p *taskPoller) poll(ctx context.Context) error {
	tenants, visits := p.tr.awaitingTasks(pollBatch)
	if len(visits) == 0 {
		return nil
	}
	rows, err := p.db.Query(ctx, `SELECT t.tenant_id, t.visit_id, t.created_at
FROM dispatch.tasks t JOIN unnest($1::text[], $2::text[]) AS w(tenant_id, visit_id)
  ON t.tenant_id = w.tenant_id AND t.visit_id = w.visit_id`, tenants, visits)
	if err != nil {
		return fmt.Errorf("query dispatch.tasks: %w", err)
	}
	defer rows.Close()
	now := time.Now()
	for rows.Next() {
		var ten, visit string
		var created time.Time
		if err := rows.Scan(&ten, &visit, &created); err != nil {
			return fmt.Errorf("read dispatch.tasks: %w", err)
		}
		p.tr.task(ten, visit, created, now)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read dispatch.tasks: %w", err)
	}
	return nil
}

// reportProgress writes a progress line every interval until ctx ends.
func reportProgress(ctx context.Context, w io.Writer, tr *tracker, every time.Duration, tasks bool) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	lastAt, lastPublished := time.Now(), 0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			line, published := tr.progress(now, now.Sub(lastAt), lastPublished, tasks)
			fmt.Fprintln(w, line)
			lastAt, lastPublished = now, published
		}
	}
}

// progress is one progress line: the publishes so far, the rate since the
// last line (published then), and each stage's latencies so far.
func (t *tracker) progress(now time.Time, since time.Duration, lastPublished int, tasks bool) (string, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	phase := "publishing"
	if !t.publishEnd.IsZero() {
		phase = "waiting"
	}
	fmt.Fprintf(&b, "%6.1fs %s: published %d acked %d failed %d pending %d | %.0f/s", now.Sub(t.start).Seconds(), phase,
		t.published, t.acked, t.failures, len(t.pending), float64(t.published-lastPublished)/max(since.Seconds(), 0.001))
	for _, st := range []struct{ name, stage string }{{"ack", stageAck}, {"service", stageService}, {"due", stageDue}, {"task", stageTask}} {
		if st.stage == stageTask && !tasks {
			continue
		}
		p := t.lat[st.stage].percentiles()
		if p.Count == 0 {
			fmt.Fprintf(&b, " | %s 0", st.name)
			continue
		}
		fmt.Fprintf(&b, " | %s %d p50 %s p99 %s", st.name, p.Count, ms(p.P50), ms(p.P99))
	}
	return b.String(), t.published
}
