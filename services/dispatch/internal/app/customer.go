package app

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

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
// later start from it, the active ones show it: store.taskColumns) and,
// when it changes what the customer's active tasks keep besides the
// snapshot (task.Rules.Reroutes; or one of them is routed otherwise than
// the new snapshot routes it, or open and placed again by it: routedApart),
// or no version was kept before, on those tasks:
//   - the open or claimed ones on a channel the customer now opts out of
//     are cancelled, as when the customer asks an agent to stop (no
//     ContactOptedOut: intake already knows);
//   - the others get the new snapshot with the owners, tier and language
//     routing reads from it, and an open one due at a moment the new
//     preferences do not allow is placed again.
//
// Otherwise no task is locked or written: only the version is kept.
func (a *App) UpdateCustomerTx(ctx context.Context, tx pgx.Tx, u CustomerUpdate) (CustomerRefresh, error) {
	var res CustomerRefresh
	c := u.Customer
	c.ID = strings.TrimSpace(c.ID)
	if err := task.CheckCustomerUpdate(c, u.Version); err != nil {
		return res, err
	}
	k := store.CustomerKey{Tenant: u.Tenant, ID: c.ID}
	kept, err := store.LockCustomerVersions(ctx, tx, []store.CustomerKey{k})
	v, found := kept[k]
	if err != nil || !task.Newer(u.Version, v.Version, found) {
		return res, err
	}
	now := a.Now()
	res.Newer = true
	reroute := u.Erased || !found || a.Rules.Reroutes(v.Customer, c)
	if !reroute {
		moves, err := a.routedApart(ctx, tx, map[store.CustomerKey]task.Customer{k: c}, now)
		if err != nil {
			return res, err
		}
		reroute = moves[k]
	}
	if reroute {
		// Before the version is kept: a task withdrawn keeps the snapshot it
		// showed (the kept one), as a finished task does.
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
			t.CustomerVersion = u.Version
			t.Replace(now)
			return !store.Unsaved(before, *t), nil
		})
		if err != nil {
			return res, err
		}
	}
	if err := store.SaveCustomerVersion(ctx, tx, u.Tenant, c, u.Version, now); err != nil {
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
	// The customers whose tasks the updates change, as UpdateCustomerTx
	// decides for each update over the one before it.
	reroute := map[store.CustomerKey]bool{}
	for _, u := range us {
		k := key(u)
		v, found := kept[k]
		if !task.Newer(u.Version, v.Version, found) {
			continue
		}
		if !slices.Contains(touched, k) {
			touched = append(touched, k)
		}
		if !found || a.Rules.Reroutes(v.Customer, u.Customer) {
			reroute[k] = true
		}
		kept[k] = store.KeptCustomer{Version: u.Version, Customer: u.Customer}
		newer = append(newer, u)
		versions = append(versions, store.CustomerVersion{Tenant: u.Tenant, Customer: u.Customer, Version: u.Version})
	}
	if len(newer) == 0 {
		return nil
	}
	now := a.Now()
	// The others' updates all place an open task alike: it is placed again
	// by the first or by none (checked with the last).
	calm := map[store.CustomerKey]task.Customer{}
	for _, k := range touched {
		if !reroute[k] {
			calm[k] = kept[k].Customer
		}
	}
	moves, err := a.routedApart(ctx, tx, calm, now)
	if err != nil {
		return err
	}
	var rerouted []store.CustomerKey
	for _, k := range touched {
		if reroute[k] || moves[k] {
			rerouted = append(rerouted, k)
		}
	}
	// The tasks are read before the versions are kept: they show the
	// snapshot kept before, which a task withdrawn keeps.
	tasks, err := store.LockActiveTasksOfCustomers(ctx, tx, rerouted)
	if err != nil {
		return err
	}
	if err := store.SaveCustomerVersions(ctx, tx, versions, now); err != nil {
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
				ts[i].CustomerVersion = u.Version
				ts[i].Replace(now)
				changed[ts[i].ID] = true
			}
		}
	}
	var save []task.Task
	for _, k := range rerouted {
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

// routedApart reports, of customers whose new snapshot does not reroute
// their tasks over the kept one (task.Rules.Reroutes), those with an
// active task the snapshot would change besides the snapshot it shows:
// routed otherwise than the snapshot routes it (a task made from its
// visit's snapshot while the customer's update was being applied, which
// that update did not see; tier ranks configured anew), or open and placed
// again at now by it (task.Task.Replace: one due at a moment its calendar
// does not allow, as a task whose time passed may be now). Their tasks
// are read, not locked: a task saved meanwhile was routed and placed by
// the kept snapshot, which routes and places as the new one.
func (a *App) routedApart(ctx context.Context, tx pgx.Tx, customers map[store.CustomerKey]task.Customer, now time.Time) (map[store.CustomerKey]bool, error) {
	out := map[store.CustomerKey]bool{}
	if len(customers) == 0 {
		return out, nil
	}
	keys := slices.Collect(maps.Keys(customers))
	active, err := store.ActiveTasksOfCustomers(ctx, tx, keys)
	if err != nil {
		return nil, err
	}
	for k, ts := range active {
		for _, t := range ts {
			routed := t
			a.Rules.SetCustomer(&routed, customers[k])
			if routed.TierRank != t.TierRank || routed.PrimaryOwner != t.PrimaryOwner || routed.BackupOwner != t.BackupOwner ||
				routed.Language != t.Language || routed.Replace(now) {
				out[k] = true
				break
			}
		}
	}
	return out, nil
}
