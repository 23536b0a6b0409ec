package app

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/store"
	"github.com/huifang/huifang/services/intake/internal/tier"
)

// CustomerQuery finds one customer of a tenant: by id, external id or phone
// (the first set; by phone, the most recently updated of those with the number).
type CustomerQuery struct {
	Tenant, ID, ExternalID, Phone string
	// Reveal: the caller is shown the contacts in clear; the audit log
	// records it (customer.reveal) in the transaction that read them.
	Reveal bool
}

// GetCustomer returns one customer with the figures its tier is computed
// from. Reading never changes the archive: the figures are shown, the tier stays.
func (a *App) GetCustomer(ctx context.Context, q CustomerQuery) (c *archive.Customer, err error) {
	read := func(db postgres.Querier) error {
		c, err = a.Store.Customer(ctx, db, store.CustomerKey{Tenant: q.Tenant, ID: q.ID, ExternalID: q.ExternalID, Phone: q.Phone})
		if err != nil {
			return notFound("customer", err)
		}
		// A leader reads the customers of the org units it leads; a
		// director and a department owner (who handles the customer's
		// complaint) any. Refused before anything is revealed or recorded.
		if p, ok := auth.Restricted(ctx, auth.Director, auth.DepartmentOwner); ok && !p.InUnits(c.OrgUnit) {
			return auth.Deny("id", "the customer belongs to an org unit the caller does not lead")
		}
		return a.Store.Figures(ctx, db, c.TenantID, tier.ScopeAt(a.Now()), []*archive.Customer{c})
	}
	if !q.Reveal {
		err = read(a.DB)
	} else {
		err = a.inTx(ctx, func(tx pgx.Tx) error {
			if err := read(tx); err != nil {
				return err
			}
			return a.revealedTx(ctx, tx, c.TenantID, "customer", c.ID)
		})
	}
	if err != nil {
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
	// Reveal: the caller is shown the contacts in clear; the audit log
	// records it for every customer of the page.
	Reveal bool
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
	if !f.Reveal {
		err = read(a.DB)
	} else {
		err = a.inTx(ctx, func(tx pgx.Tx) error {
			if err := read(tx); err != nil {
				return err
			}
			ids := make([]string, len(list))
			for i, c := range list {
				ids[i] = c.ID
			}
			return a.revealedTx(ctx, tx, f.Tenant, "customer", ids...)
		})
	}
	if err != nil {
		return nil, false, err
	}
	return list, more, nil
}
