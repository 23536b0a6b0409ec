package app

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// CustomerUpdate is a new version of a customer from intake (CustomerUpdated).
type CustomerUpdate struct {
	Tenant   string
	Customer task.Customer
	// Version only goes up in intake.
	Version int64
	// Erased: intake erased the customer; every task and message of it
	// loses the masked contacts too.
	Erased bool
}

// CustomerRefresh is what UpdateCustomer did.
type CustomerRefresh struct {
	// Newer is false when a version at least as new was already kept: then
	// nothing changed.
	Newer bool
	// Refreshed counts the active tasks that got the new snapshot.
	Refreshed int
	// Withdrawn counts the active tasks cancelled because the customer
	// opted out of their channel.
	Withdrawn int
}

// UpdateCustomer applies a customer update; see UpdateCustomerTx.
func (a *App) UpdateCustomer(ctx context.Context, u CustomerUpdate) (CustomerRefresh, error) {
	var res CustomerRefresh
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		res, err = a.UpdateCustomerTx(ctx, tx, u)
		return err
	})
	return res, err
}

// UpdateCustomerTx applies a new version of a customer within tx. No
// customer id, or a version below 1: an *invalid.Error. A version not newer
// than the kept one changes nothing; a newer one is kept (tasks created
// later start from it) and, on the customer's active tasks:
//   - the open or claimed ones on a channel the customer now opts out of
//     are cancelled, as when the customer asks an agent to stop (no
//     ContactOptedOut: intake already knows);
//   - the others get the new snapshot with the owners, tier and language
//     routing reads from it, and an open one due at a moment the new
//     preferences do not allow is placed again.
func (a *App) UpdateCustomerTx(ctx context.Context, tx pgx.Tx, u CustomerUpdate) (CustomerRefresh, error) {
	var res CustomerRefresh
	c := u.Customer
	c.ID = strings.TrimSpace(c.ID)
	if err := task.CheckCustomerUpdate(c, u.Version); err != nil {
		return res, err
	}
	kept, found, err := store.LockCustomerVersion(ctx, tx, u.Tenant, c.ID)
	if err != nil || !task.Newer(u.Version, kept, found) {
		return res, err
	}
	now := a.Now()
	if err := store.SaveCustomerVersion(ctx, tx, u.Tenant, c, u.Version, now); err != nil {
		return res, err
	}
	res.Newer = true
	for _, ch := range c.Preferences.OptedOut {
		n, err := store.UpdateActiveTasksOfCustomer(ctx, tx, u.Tenant, c.ID, now, func(t *task.Task) (bool, error) {
			return t.WithdrawOptedOut(ch, ""), nil
		})
		res.Withdrawn += n
		if err != nil {
			return res, err
		}
	}
	res.Refreshed, err = store.UpdateActiveTasksOfCustomer(ctx, tx, u.Tenant, c.ID, now, func(t *task.Task) (bool, error) {
		a.Rules.SetCustomer(t, c)
		t.Replace(now)
		return true, nil
	})
	if err != nil {
		return res, err
	}
	if u.Erased {
		if err := store.ForgetCustomerContacts(ctx, tx, u.Tenant, c.ID); err != nil {
			return res, err
		}
		if err := store.ForgetAppointmentNotes(ctx, tx, u.Tenant, c.ID); err != nil {
			return res, err
		}
	}
	if res.Refreshed > 0 {
		a.wake() // early, as CreateTaskTx: a claim that misses the uncommitted change polls again
	}
	return res, nil
}
