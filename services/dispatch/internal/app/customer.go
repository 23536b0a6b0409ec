package app

import (
	"context"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/inbox"

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
		before := *t
		a.Rules.SetCustomer(t, c)
		t.Replace(now)
		return !store.Unsaved(before, *t), nil
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

// UpdateCustomerLaterTx is UpdateCustomerTx for an update that erases no
// one, written with the other updates of the consumer's batch just before
// its commit (inbox.Gather): the batch's customers locked in a stable
// order, their versions read, kept, their active tasks locked and saved in
// one statement each, the updates applied in their order, to the same end
// as UpdateCustomerTx of each in turn. A bad update (no customer id, a
// version below 1) is refused at once. A batch that also erases the
// customer must apply its updates of that customer with UpdateCustomerTx,
// in order.
func (a *App) UpdateCustomerLaterTx(ctx context.Context, tx pgx.Tx, u CustomerUpdate) error {
	if u.Erased {
		_, err := a.UpdateCustomerTx(ctx, tx, u)
		return err
	}
	u.Customer.ID = strings.TrimSpace(u.Customer.ID)
	if err := task.CheckCustomerUpdate(u.Customer, u.Version); err != nil {
		return err
	}
	return inbox.Gather(ctx, tx, "dispatch.customer-updates", u, a.updateCustomers)
}

// updateCustomers applies updates that erase no one, in their order.
func (a *App) updateCustomers(ctx context.Context, tx pgx.Tx, us []CustomerUpdate) error {
	key := func(u CustomerUpdate) store.CustomerKey {
		return store.CustomerKey{Tenant: u.Tenant, ID: u.Customer.ID}
	}
	keys := make([]store.CustomerKey, len(us))
	for i, u := range us {
		keys[i] = key(u)
	}
	kept, err := store.LockCustomerVersions(ctx, tx, keys)
	if err != nil {
		return err
	}
	var newer []CustomerUpdate
	var versions []store.CustomerVersion
	var touched []store.CustomerKey // with a newer version, in their first update's order
	for _, u := range us {
		k := key(u)
		v, found := kept[k]
		if !task.Newer(u.Version, v, found) {
			continue
		}
		if !slices.Contains(touched, k) {
			touched = append(touched, k)
		}
		kept[k] = u.Version
		newer = append(newer, u)
		versions = append(versions, store.CustomerVersion{Tenant: u.Tenant, Customer: u.Customer, Version: u.Version})
	}
	if len(newer) == 0 {
		return nil
	}
	now := a.Now()
	if err := store.SaveCustomerVersions(ctx, tx, versions, now); err != nil {
		return err
	}
	tasks, err := store.LockActiveTasksOfCustomers(ctx, tx, touched)
	if err != nil {
		return err
	}
	// Each update sees the customer's tasks as the one before left them:
	// a task it withdraws is no longer active for the next. A task that
	// ends as it was loaded (it carries the snapshot already) is not saved.
	loaded := map[string]task.Task{}
	for _, ts := range tasks {
		for _, t := range ts {
			loaded[t.ID] = t
		}
	}
	changed := map[string]bool{}
	refreshed := false
	for _, u := range newer {
		ts := tasks[key(u)]
		for _, ch := range u.Customer.Preferences.OptedOut {
			for i := range ts {
				if ts[i].Active() && ts[i].WithdrawOptedOut(ch, "") {
					changed[ts[i].ID] = true
				}
			}
		}
		for i := range ts {
			if ts[i].Active() {
				a.Rules.SetCustomer(&ts[i], u.Customer)
				ts[i].Replace(now)
				changed[ts[i].ID] = true
			}
		}
	}
	var save []task.Task
	for _, k := range touched {
		for _, t := range tasks[k] {
			if changed[t.ID] && !store.Unsaved(loaded[t.ID], t) {
				save = append(save, t)
				refreshed = refreshed || t.Active()
			}
		}
	}
	if err := store.SaveTasks(ctx, tx, save, now); err != nil {
		return err
	}
	if refreshed {
		a.wake() // early, as UpdateCustomerTx
	}
	return nil
}
