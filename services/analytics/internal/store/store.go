// Package store keeps analytics' rollups and ledgers in Postgres: the daily
// and monthly counters, the per-visit, per-complaint, per-service and
// per-customer entries events update (by closure, under a lock), targets,
// breaches and incentive rules. Every function takes the postgres.Querier
// (or pgx.Tx) it runs on, so it works on the pool or inside a use case's
// transaction; driver errors become the sentinels of errors.go. It decides
// no rule: the use cases (package app) and the domain do.
package store

import (
	"context"
	"fmt"

	"github.com/huifang/huifang/pkg/postgres"
)

// RebuildRequested reports whether a migration asked for a rebuild (rows in rebuild_requests).
func RebuildRequested(ctx context.Context, db postgres.Querier) (bool, error) {
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM rebuild_requests`).Scan(&n); err != nil {
		return false, fmt.Errorf("store: rebuild requests: %w", translate(err))
	}
	return n > 0, nil
}
