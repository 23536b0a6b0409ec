// Package timer runs the loop that fires due visits.
package timer

import (
	"context"
	"log/slog"
	"time"
)

// Firer fires up to limit visits due at or before now and says how many it fired.
type Firer interface {
	FireDue(ctx context.Context, now time.Time, limit int) (int, error)
}

// Loop fires due visits every Interval, and again at once while batches come back full.
type Loop struct {
	Store    Firer
	Now      func() time.Time
	Log      *slog.Logger
	Interval time.Duration
	Batch    int
	// Fired is called after each round that fired visits (the relay's Notify).
	Fired func()
}

// Run fires until ctx ends. A stopped scheduler catches up on restart: every
// visit whose time has passed is still 'planned' and fires in the first rounds.
func (l *Loop) Run(ctx context.Context) error {
	t := time.NewTicker(l.Interval)
	defer t.Stop()
	for {
		n, err := l.Store.FireDue(ctx, l.Now(), l.Batch)
		if err != nil && ctx.Err() == nil {
			l.Log.ErrorContext(ctx, "firing due visits failed", "err", err)
		}
		if n > 0 && l.Fired != nil {
			l.Fired()
		}
		if n == l.Batch {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
