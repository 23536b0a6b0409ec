package app

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/intake/internal/archive"
)

// SetCustomerOwners replaces the staff who know a customer (seed 002: at
// least two; the first is the primary owner).
type SetCustomerOwners struct {
	Tenant, CustomerID string
	OwnerIDs           []string
}

// SetCustomerOwners changes the customer in a transaction of its own.
func (a *App) SetCustomerOwners(ctx context.Context, in SetCustomerOwners) (*archive.Customer, error) {
	var c *archive.Customer
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		c, err = a.SetCustomerOwnersTx(ctx, tx, in)
		return err
	})
	return c, err
}

// SetCustomerOwnersTx is SetCustomerOwners within the caller's transaction.
func (a *App) SetCustomerOwnersTx(ctx context.Context, tx pgx.Tx, in SetCustomerOwners) (*archive.Customer, error) {
	var l invalid.List
	if in.CustomerID == "" {
		l.Add("customer_id", "is required")
	}
	archive.CheckOwners(&l, "owner_ids", in.OwnerIDs)
	if err := l.Err(); err != nil {
		return nil, err
	}
	c, err := a.updateCustomer(ctx, tx, in.Tenant, in.CustomerID, "SetCustomerOwners", func(c *archive.Customer) []string {
		return c.SetOwners(in.OwnerIDs)
	})
	return c, refusedAs("owner_ids", err)
}
