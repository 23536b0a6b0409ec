// Package loop runs a service's background work (the outbox relay, firing
// due visits, the SLA clock, sending messages, target checks) in rounds, all
// in the same shape: a round at start, then one every interval or when
// woken, at once again while rounds come back full, a capped backoff after
// failures, and a stop when the context ends.
package loop

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"
)

// Defaults of a Loop's zero fields.
const (
	DefaultEvery      = time.Second
	DefaultMaxBackoff = 30 * time.Second
)

// Round does one round of work and says how many items it handled.
type Round func(ctx context.Context) (int, error)

// Loop runs Round until its context ends.
type Loop struct {
	// Name says which loop a log line is about.
	Name string
	// Every is the pause after a round that was not full; DefaultEvery when zero.
	Every time.Duration
	// Batch is the size of a full round: a round that handled Batch items
	// (or more) is followed at once by the next, so a backlog drains without
	// waiting. Zero: every round waits.
	Batch int
	Round Round
	// Wake, when set, starts the next round before Every is up.
	Wake <-chan struct{}
	// Done, when set, is called after each round that handled items (for
	// instance the outbox relay's Notify).
	Done func(n int)
	// MaxBackoff caps the pause after failed rounds, which doubles from
	// Every with each failure in a row; DefaultMaxBackoff when zero.
	MaxBackoff time.Duration
	Log        *slog.Logger
}

// Run runs rounds until ctx ends; it returns nil then. A failing round is
// logged when the loop starts failing and when it recovers, not at every
// attempt; a panic in a round counts as a failure.
func (l *Loop) Run(ctx context.Context) error {
	every := l.Every
	if every <= 0 {
		every = DefaultEvery
	}
	maxBackoff := max(l.MaxBackoff, every)
	if l.MaxBackoff <= 0 {
		maxBackoff = max(DefaultMaxBackoff, every)
	}
	var (
		failures  int
		failingAt time.Time
		lastErr   string
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		n, err := l.round(ctx)
		if ctx.Err() != nil {
			return nil
		}
		pause := every
		switch {
		case err != nil:
			failures++
			if failures == 1 {
				failingAt = time.Now()
				l.Log.ErrorContext(ctx, "background loop failing; retrying with backoff", "loop", l.Name, "err", err)
			} else if msg := err.Error(); msg != lastErr {
				l.Log.WarnContext(ctx, "background loop still failing", "loop", l.Name, "failures", failures, "err", err)
			}
			lastErr = err.Error()
			pause = backoff(every, maxBackoff, failures)
		case failures > 0:
			l.Log.InfoContext(ctx, "background loop recovered", "loop", l.Name, "failures", failures, "after", time.Since(failingAt).Round(time.Millisecond))
			failures, lastErr = 0, ""
		}
		if n > 0 && l.Done != nil {
			l.Done(n)
		}
		if err == nil && l.Batch > 0 && n >= l.Batch {
			continue
		}
		timer.Reset(pause)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-l.Wake:
			if !timer.Stop() {
				<-timer.C
			}
		}
	}
}

// round runs one round, turning a panic into an error.
func (l *Loop) round(ctx context.Context) (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return l.Round(ctx)
}

// backoff is every doubled for each failure after the first, capped.
func backoff(every, limit time.Duration, failures int) time.Duration {
	d := every
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// Signal wakes a loop (its Wake): Notify never blocks, and several
// notifications before the loop looks make one round.
type Signal chan struct{}

// NewSignal returns a signal ready for Notify.
func NewSignal() Signal { return make(Signal, 1) }

// Notify wakes the loop.
func (s Signal) Notify() {
	select {
	case s <- struct{}{}:
	default:
	}
}
