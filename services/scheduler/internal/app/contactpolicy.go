package app

import (
	"context"

	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/store"
)

// SetContactPolicy replaces the tenant's contact policy, after filling in
// the named preset ("002": the seed-002 windows when none are given) and
// validating it.
func (a *App) SetContactPolicy(ctx context.Context, tenant string, r contact.Rules, preset string) (contact.Rules, error) {
	if err := r.ApplyPreset(preset); err != nil {
		return contact.Rules{}, err
	}
	if err := r.Validate(); err != nil {
		return contact.Rules{}, err
	}
	if err := store.SaveContactRules(ctx, a.DB, tenant, r, a.now()); err != nil {
		return contact.Rules{}, err
	}
	return r, nil
}

// ContactPolicy returns the tenant's contact policy (the zero Rules, any
// time, when it has none).
func (a *App) ContactPolicy(ctx context.Context, tenant string) (contact.Rules, error) {
	return rulesOf(ctx, a.DB, tenant)
}
