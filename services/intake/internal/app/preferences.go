package app

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/ingest"
)

// UpdateContactPreferences replaces a customer's contact preferences (seed
// 002: opt-outs, daily windows, time zone, language, dislikes calls).
type UpdateContactPreferences struct {
	Tenant, CustomerID string
	Preferences        *archive.Preferences
}

// UpdateContactPreferences changes the customer in a transaction of its
// own: a change bumps its version and announces CustomerUpdated; the same
// preferences again change nothing.
func (a *App) UpdateContactPreferences(ctx context.Context, in UpdateContactPreferences) (*archive.Customer, error) {
	var c *archive.Customer
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		c, err = a.UpdateContactPreferencesTx(ctx, tx, in)
		return err
	})
	return c, err
}

// UpdateContactPreferencesTx is UpdateContactPreferences within the caller's transaction.
func (a *App) UpdateContactPreferencesTx(ctx context.Context, tx pgx.Tx, in UpdateContactPreferences) (*archive.Customer, error) {
	var l invalid.List
	if in.CustomerID == "" {
		l.Add("customer_id", "is required")
	}
	if in.Preferences == nil {
		l.Add("preferences", "is required")
	} else {
		ingest.ValidatePreferences(&l, "preferences", in.Preferences)
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	c, err := a.updateCustomer(ctx, tx, in.Tenant, in.CustomerID, "UpdateContactPreferences", func(c *archive.Customer) []string {
		return c.SetPreferences(in.Preferences)
	})
	if err != nil {
		return nil, refusedAs("preferences", err)
	}
	// A leader changes the customers of the org units it leads (the error
	// rolls the transaction back).
	if p, ok := auth.Restricted(ctx, auth.Director, auth.Integrator); ok && !p.InUnits(c.OrgUnit) {
		return nil, auth.Deny("customer_id", "the customer belongs to an org unit the caller does not lead")
	}
	return c, nil
}

// updateCustomer changes a customer by id with change under its row lock,
// settles the change and announces it. A CustomerUpdated too large to
// publish fails it with a *tooLargeError (after the save: the caller's
// transaction rolls back).
func (a *App) updateCustomer(ctx context.Context, tx pgx.Tx, tenant, id, source string, change func(c *archive.Customer) []string) (*archive.Customer, error) {
	var changed []string
	c, err := a.Store.UpdateCustomer(ctx, tx, tenant, id, func(c *archive.Customer) (bool, error) {
		var err error
		changed, err = a.settle(ctx, tx, c, change(c))
		return len(changed) > 0, err
	})
	if err != nil {
		return nil, notFound("customer", err)
	}
	return c, a.announce(ctx, tx, c, changed, source)
}
