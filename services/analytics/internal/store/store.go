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

// Reset empties every rollup and ledger and forgets which events the
// consumer handled, within tx, so a replay of the stream rebuilds them.
// Targets, incentive rules and breaches already published are kept.
func Reset(ctx context.Context, tx postgres.Querier, consumer string) error {
	if _, err := tx.Exec(ctx, `TRUNCATE daily, monthly, daily_tenant, monthly_tenant, visits, complaints, services, customers, service_coverage, customer_members, customer_coverage, rebuild_requests`); err != nil {
		return fmt.Errorf("store: reset rollups: %w", translate(err))
	}
	if _, err := tx.Exec(ctx, `DELETE FROM inbox WHERE consumer = $1`, consumer); err != nil {
		return fmt.Errorf("store: reset inbox: %w", translate(err))
	}
	if _, err := tx.Exec(ctx, `DELETE FROM rejected_events`); err != nil {
		return fmt.Errorf("store: reset rejected events: %w", translate(err))
	}
	return nil
}
