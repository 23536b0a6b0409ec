package app

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/audit"

	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// SetTarget sets a tenant's own target for a figure, in percent; it replaces
// seed 003's (figures.ValidFigure names the figures that take one).
func (a *App) SetTarget(ctx context.Context, tenant, figure string, percent int64) error {
	return pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		if err := store.SetTarget(ctx, tx, tenant, figure, percent); err != nil {
			return err
		}
		return a.auditTx(ctx, tx, tenant, "target.set", audit.Target{Kind: "target", ID: figure}, audit.Detail{"percent": percent})
	})
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
	return pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		if err := store.SetIncentiveRule(ctx, tx, tenant, r); err != nil {
			return err
		}
		return a.auditTx(ctx, tx, tenant, "incentive_rule.set", audit.Target{Kind: "incentive_rule", ID: tenant}, audit.Detail{
			"agent_reward_fen": r.AgentRewardFen, "agent_penalty_fen": r.AgentPenaltyFen,
			"manager_reward_fen": r.ManagerRewardFen, "manager_penalty_fen": r.ManagerPenaltyFen,
			"director_reward_fen": r.DirectorRewardFen, "director_penalty_fen": r.DirectorPenaltyFen,
		})
	})
}
