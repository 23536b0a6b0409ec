package app

import (
	"fmt"

	"github.com/huifang/huifang/pkg/enum"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

// CustomerUpdate is the customer archive's newest word on a customer (CustomerUpdated).
type CustomerUpdate struct {
	Tenant   string
	Customer Customer
	// Version orders the updates: the newest wins.
	Version int64
	// At is when it changed; zero: now.
	At time.Time
	// Erased: intake erased the customer: its pending visits end on every
	// channel and the visits' snapshots lose the masked contacts.
	Erased bool
}

// UpdateCustomer keeps a customer's preferences in a transaction of its own.
func (a *App) UpdateCustomer(ctx context.Context, in CustomerUpdate) error {
	return a.inTx(ctx, func(tx pgx.Tx) error { return a.UpdateCustomerTx(ctx, tx, in) })
}

// UpdateCustomerTx keeps a customer's contact preferences within tx (time
// zone, windows, opt-outs, dislikes calls): the newest version wins, and no
// opt-out is lost.
func (a *App) UpdateCustomerTx(ctx context.Context, tx pgx.Tx, in CustomerUpdate) error {
	at := or(in.At, a.Now())
	source := fmt.Sprintf("intake: CustomerUpdated, archive version %d", in.Version)
	if in.Erased {
		source = fmt.Sprintf("intake: erased, archive version %d", in.Version)
	}
	if _, err := updateCustomer(ctx, tx, in.Tenant, in.Customer, in.Version, at, source); err != nil || !in.Erased {
		return err
	}
	for _, ch := range enum.Values[typesv1.Channel]() { // an erased customer is contacted on none
		if _, err := a.OptOutTx(ctx, tx, OptOut{Tenant: in.Tenant, CustomerID: in.Customer.ID, Channel: int32(ch), At: at, Source: source}); err != nil {
			return err
		}
	}
	return store.ForgetContacts(ctx, tx, in.Tenant, in.Customer.ID)
}

// OptOut is a customer opting out of a channel (ContactOptedOut).
type OptOut struct {
	Tenant, CustomerID string
	Channel            int32
	// Source says where the opt-out came from ("dispatch: asked to stop
	// during visit …"); recorded with it (opt_outs).
	Source string
	// At is when; zero: now.
	At time.Time
}

// OptOut applies an opt-out in a transaction of its own.
func (a *App) OptOut(ctx context.Context, in OptOut) (n int, err error) {
	err = a.inTx(ctx, func(tx pgx.Tx) error {
		n, err = a.OptOutTx(ctx, tx, in)
		return err
	})
	return n, err
}

// OptOutTx records the opt-out within tx and ends the customer's pending
// visits on that channel (VisitCancelled); it returns how many it ended.
// Visits that fall due later on that channel are suppressed when due.
func (a *App) OptOutTx(ctx context.Context, tx pgx.Tx, in OptOut) (int, error) {
	at := or(in.At, a.Now())
	source := in.Source
	if source == "" {
		source = "unnamed"
	}
	if _, err := store.UpdateCustomer(ctx, tx, in.Tenant, in.CustomerID, source, func(c *contact.Customer) bool {
		c.OptOut(in.Channel, at)
		return true
	}); err != nil {
		return 0, err
	}
	pending, err := store.LockPending(ctx, tx, in.Tenant, in.CustomerID)
	if err != nil {
		return 0, err
	}
	_, stopped := splitStopped(pending, func(v *visit.Visit) bool { return v.StopOptedOut(in.Channel, at) })
	return len(stopped), cancelled(ctx, tx, stopped, at)
}
