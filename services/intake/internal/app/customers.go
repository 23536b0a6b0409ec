package app

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/privacy"
	"github.com/huifang/huifang/services/intake/internal/store"
	"github.com/huifang/huifang/services/intake/internal/tier"
)

// CustomerQuery finds one customer of a tenant: by id, external id or phone
// (the first set; by phone, the most recently updated of those with the number).
type CustomerQuery struct {
	Tenant, ID, ExternalID, Phone string
	// Purpose says why the caller looks a customer up by phone (required
	// then): such lookups are rate-limited and audited (customer.lookup).
	Purpose string
}

// GetCustomer returns one customer with the figures its tier is computed
// from. Reading never changes the archive: the figures are shown, the tier
// stays. A lookup by phone needs a purpose, counts against the caller's
// reveal rate and is written to the audit log (customer.lookup), found or
// not: about 10⁴ answered lookups would otherwise recover a masked number.
func (a *App) GetCustomer(ctx context.Context, q CustomerQuery) (c *archive.Customer, err error) {
	byPhone := q.ID == "" && q.ExternalID == "" && q.Phone != ""
	if byPhone {
		if err := audit.CheckPurpose("purpose", q.Purpose); err != nil {
			return nil, err
		}
		if err := a.admitReveal(ctx); err != nil {
			return nil, err
		}
	}
	read := func(db postgres.Querier) error {
		c, err = a.Store.Customer(ctx, db, store.CustomerKey{Tenant: q.Tenant, ID: q.ID, ExternalID: q.ExternalID, Phone: q.Phone})
		if err != nil {
			return notFound("customer", err)
		}
		// A leader reads the customers of the org units it leads; a
		// director and a department owner (who handles the customer's
		// complaint) any.
		if p, ok := auth.Restricted(ctx, auth.Director, auth.DepartmentOwner); ok && !p.InUnits(c.OrgUnit) {
			return auth.Deny("id", "the customer belongs to an org unit the caller does not lead")
		}
		return a.Store.Figures(ctx, db, c.TenantID, tier.ScopeAt(a.Now()), []*archive.Customer{c})
	}
	if !byPhone {
		if err := read(a.DB); err != nil {
			return nil, err
		}
		return c, nil
	}
	var found error
	err = a.inTx(ctx, func(tx pgx.Tx) error {
		found = read(tx)
		target, outcome := audit.Target{Kind: "customer"}, "found"
		switch {
		case found == nil:
			target.ID = c.ID
		case errors.Is(found, ErrNotFound):
			outcome = "not_found"
		default:
			var d *auth.Denied
			if !errors.As(found, &d) {
				return found
			}
			outcome = "refused"
		}
		return a.auditTx(ctx, tx, q.Tenant, "customer.lookup", target,
			audit.Detail{"by": "phone", "phone": privacy.MaskPhone(q.Phone), "purpose": q.Purpose, "outcome": outcome})
	})
	if err != nil {
		return nil, err
	}
	if found != nil {
		return nil, found
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

// ListCustomers lists up to size customers by id after afterID, with the
// figures their tiers are computed from (one query for the whole page), and
// whether more follow.
func (a *App) ListCustomers(ctx context.Context, f CustomerFilter, size int, afterID string) (list []*archive.Customer, more bool, err error) {
	sf := store.CustomerFilter{Tenant: f.Tenant, Tier: f.Tier}
	if f.FewerThanTwoOwners {
		sf.FewerOwnersThan = archive.MinOwners
	}
	read := func(db postgres.Querier) error {
		if list, err = a.Store.Customers(ctx, db, sf, size+1, afterID); err != nil {
			return err
		}
		if more = len(list) > size; more {
			list = list[:size]
		}
		return a.Store.Figures(ctx, db, f.Tenant, tier.ScopeAt(a.Now()), list)
	}
	if err = read(a.DB); err != nil {
		return nil, false, err
	}
	return list, more, nil
}
