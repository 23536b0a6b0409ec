package app

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/services/analytics/internal/store"
)

// Rebuild resets the rollups and replays the stream, through the
// consumer's gate: it stops the consumer, resets (ResetRollups), deletes the
// durable and starts it again from the stream's first message. It returns
// the stream's last sequence: the rollups are complete once the consumer has
// passed it. Only the replica that consumes rebuilds; another answers
// ErrStandby.
func (a *App) Rebuild(ctx context.Context) (uint64, error) {
	if a.Rebuilder == nil {
		return 0, ErrNoRebuild
	}
	return a.Rebuilder.Rebuild(ctx)
}

// ResetRollups empties every rollup and ledger and forgets which events the
// consumer handled (and refused), in one transaction, so that a replay of
// the stream rebuilds them byte for byte. Targets, incentive rules and
// breaches stay. The consumer must be stopped meanwhile (the gate does it).
func (a *App) ResetRollups(ctx context.Context, consumer string) error {
	return pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error { return store.Reset(ctx, tx, consumer) })
}

// RebuildRequested reports whether a migration asked for a rebuild.
func (a *App) RebuildRequested(ctx context.Context) (bool, error) {
	return store.RebuildRequested(ctx, a.DB)
}
