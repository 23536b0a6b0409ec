package app

import (
	"context"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/store"
	"github.com/huifang/huifang/services/intake/internal/tier"
)

// CustomerQuery finds one customer of a tenant: by id, external id or phone
// (the first set; by phone, the most recently updated of those with the number).
type CustomerQuery struct {
	Tenant, ID, ExternalID, Phone string
}

// GetCustomer returns one customer with the figures its tier is computed
// from. Reading never changes the archive: the figures are shown, the tier stays.
func (a *App) GetCustomer(ctx context.Context, q CustomerQuery) (*archive.Customer, error) {
	c, err := a.Store.Customer(ctx, a.DB, store.CustomerKey(q))
	if err != nil {
		return nil, notFound("customer", err)
	}
	// A leader reads the customers of the org units it leads; a director
	// and a department owner (who handles the customer's complaint) any.
	if p, ok := auth.Restricted(ctx, auth.Director, auth.DepartmentOwner); ok && !p.InUnits(c.OrgUnit) {
		return nil, auth.Deny("id", "the customer belongs to an org unit the caller does not lead")
	}
	if err := a.Store.Figures(ctx, a.DB, c.TenantID, tier.ScopeAt(a.Now()), []*archive.Customer{c}); err != nil {
		return nil, err
	}
	return c, nil
}

// CustomerFilter narrows ListCustomers.
type CustomerFilter struct {
	Tenant string
	// Tier, when set, lists one tier.
	Tier string
	// FewerThanTwoOwners lists the customers known to fewer staff than
	// every customer must be (seed 002: archive.MinOwners).
	FewerThanTwoOwners bool
}

// ListCustomers lists up to limit customers by id after afterID, with the
// figures their tiers are computed from (one query for the whole page).
func (a *App) ListCustomers(ctx context.Context, f CustomerFilter, limit int, afterID string) ([]*archive.Customer, error) {
	sf := store.CustomerFilter{Tenant: f.Tenant, Tier: f.Tier}
	if f.FewerThanTwoOwners {
		sf.FewerOwnersThan = archive.MinOwners
	}
	list, err := a.Store.Customers(ctx, a.DB, sf, limit, afterID)
	if err != nil {
		return nil, err
	}
	if err := a.Store.Figures(ctx, a.DB, f.Tenant, tier.ScopeAt(a.Now()), list); err != nil {
		return nil, err
	}
	return list, nil
}
