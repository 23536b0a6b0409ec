// Package app holds analytics' use cases. Commands: apply one event to the
// rollups (ApplyEvent / ApplyEventTx, which the consumer runs inside its
// inbox transaction), rebuild the rollups into shadow tables, set targets and the
// incentive rule, check the targets (the only writer of TargetBreached to
// the outbox). Queries: the figures of a tenant, period and filter
// (satisfaction, coverage, customer coverage, timeliness, problems, agent
// scorecards, trends, reports) and the targets and breaches. The rules are
// in the domain packages (rollup, figures, satisfaction, report); the SQL
// is in store.
package app

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// App runs analytics' use cases.
type App struct {
	// DB is the pool (or a transaction, whose Begin is a savepoint).
	DB postgres.DB
	// Relay is woken after a command wrote to the outbox; may be nil.
	Relay Notifier
	// Now is the clock of target checks; time.Now when nil.
	Now func() time.Time
	// Breaches counts the breaches recorded, by figure
	// (huifang_target_breaches_total); may be nil.
	Breaches *prometheus.CounterVec
	// Rebuilder replays the stream into shadow tables and swaps them in
	// (the consumer's gate); Rebuild answers ErrNoRebuild without it.
	Rebuilder Rebuilder
}

// Notifier is told that events were committed to the outbox (the relay).
type Notifier interface{ Notify() }

// Rebuilder rebuilds the rollups from the stream (see Rebuild) on behalf
// of by, whom the swap records in the audit log (Rebuilt).
type Rebuilder interface {
	Rebuild(ctx context.Context, by audit.Actor) (uint64, error)
}

// Refusals of the use cases.
var (
	// ErrStandby: this replica does not consume now; another one does and
	// rebuilds (a retry reaches it).
	ErrStandby = errors.New("consumer: this replica is standing by; another one consumes (retry reaches the leader)")
	// ErrNoRebuild: this process cannot rebuild (no consumer runs in it).
	ErrNoRebuild = errors.New("rebuild is not configured")
)

// Scope is what a figure is computed over.
type Scope struct {
	Tenant string
	// From and To bound the days as [From, To); zero leaves a side open.
	From, To time.Time
	Filter   rollup.Dims
}

func (s Scope) query(metrics []string, groupBy ...string) store.Query {
	return store.Query{Tenant: s.Tenant, Metrics: metrics, From: s.From, To: s.To, Filter: s.Filter, GroupBy: groupBy}
}

func (a *App) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *App) notify() {
	if a.Relay != nil {
		a.Relay.Notify()
	}
}

// Targets returns the targets in force for tenant: its own over seed 003's.
func (a *App) Targets(ctx context.Context, tenant string) (figures.Targets, error) {
	own, err := store.Targets(ctx, a.DB, tenant)
	if err != nil {
		return figures.Targets{}, err
	}
	return figures.NewTargets(own), nil
}
