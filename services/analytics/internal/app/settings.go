package app

import (
	"context"
	"errors"

	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// SetTarget sets a tenant's own target for a figure, in percent; it replaces
// seed 003's (figures.ValidFigure names the figures that take one).
func (a *App) SetTarget(ctx context.Context, tenant, figure string, percent int64) error {
	return store.SetTarget(ctx, a.DB, tenant, figure, percent)
}

// IncentiveRule returns the tenant's incentive rule: its own, or seed 000's
// auto-dealer rule when it set none.
func (a *App) IncentiveRule(ctx context.Context, tenant string) (figures.IncentiveRule, error) {
	r, err := store.IncentiveRule(ctx, a.DB, tenant)
	if errors.Is(err, store.ErrNotFound) {
		return figures.AutoDealerRule, nil
	}
	return r, err
}

// SetIncentiveRule sets the tenant's incentive rule.
func (a *App) SetIncentiveRule(ctx context.Context, tenant string, r figures.IncentiveRule) error {
	return store.SetIncentiveRule(ctx, a.DB, tenant, r)
}
