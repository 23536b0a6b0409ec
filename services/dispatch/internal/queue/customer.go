package queue

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// CustomerRefresh is what UpdateCustomer did.
type CustomerRefresh struct {
	// Newer is false when a version at least as new was already kept: then
	// nothing changed.
	Newer bool
	// Refreshed counts the active tasks that got the new snapshot.
	Refreshed int
	// Withdrawn counts the active tasks cancelled because the customer
	// opted out of their channel.
	Withdrawn int64
}

// UpdateCustomer applies version of customer c (CustomerUpdated) within
// tx: an older or equal version than the one kept changes nothing; a newer
// one is kept (tasks created later start from it) and replaces the
// snapshot of the customer's active tasks, with the owners, tier and
// language routing reads from it (an open task due outside the new contact
// window moves to its next start); and the open or claimed tasks on a
// channel the customer now opts out of are cancelled, as when the customer
// asks an agent to stop (no ContactOptedOut: intake already knows).
func UpdateCustomer(ctx context.Context, tx pgx.Tx, tenant string, c *typesv1.Customer, version int64, rules task.Rules, now time.Time) (CustomerRefresh, error) {
	var res CustomerRefresh
	newer, err := store.SaveCustomerVersion(ctx, tx, tenant, c, version, now)
	if err != nil || !newer {
		return res, err
	}
	res.Newer = true
	for _, ch := range c.GetPreferences().GetOptedOut() {
		n, err := store.CancelCustomerChannel(ctx, tx, tenant, c.GetId(), ch, "", now)
		if err != nil {
			return res, err
		}
		res.Withdrawn += n
	}
	tasks, err := store.ActiveTasksOfCustomer(ctx, tx, tenant, c.GetId())
	if err != nil {
		return res, err
	}
	for _, t := range tasks {
		rules.SetCustomer(&t, c)
		rules.Rewindow(&t, now)
		if err := store.SaveTaskCustomer(ctx, tx, t, now); err != nil {
			return res, err
		}
		res.Refreshed++
	}
	return res, nil
}
