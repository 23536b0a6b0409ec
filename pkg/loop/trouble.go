package loop

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Trouble reports a failure that repeats (a dependency away, a server that
// does not answer) the way an operator wants to read it: one line when it
// starts, one when its message changes, one when it ends, never one per
// attempt. Safe for concurrent use; the zero value needs Log and What.
type Trouble struct {
	Log *slog.Logger
	// What names the thing that fails, e.g. "consumer scheduler-visit-due: pull".
	What string

	mu    sync.Mutex
	n     int
	since time.Time
	last  string
}

// Fail records one more failure and returns how many in a row there were.
func (t *Trouble) Fail(ctx context.Context, err error) int {
	t.mu.Lock()
	t.n++
	n, msg := t.n, err.Error()
	first, changed := n == 1, msg != t.last
	if first {
		t.since = time.Now()
	}
	t.last = msg
	t.mu.Unlock()
	switch {
	case first:
		t.Log.WarnContext(ctx, t.What+" failing; retrying with backoff", "err", err)
	case changed:
		t.Log.WarnContext(ctx, t.What+" still failing", "failures", n, "err", err)
	}
	return n
}

// OK records a success; after failures it logs the recovery once.
func (t *Trouble) OK(ctx context.Context) {
	t.mu.Lock()
	n, since := t.n, t.since
	t.n, t.last = 0, ""
	t.mu.Unlock()
	if n > 0 {
		t.Log.InfoContext(ctx, t.What+" recovered", "failures", n, "after", time.Since(since).Round(time.Millisecond))
	}
}

// Backoff is the pause after the nth failure in a row: base doubled for
// each failure after the first, capped at limit.
func Backoff(base, limit time.Duration, n int) time.Duration { return backoff(base, limit, n) }
