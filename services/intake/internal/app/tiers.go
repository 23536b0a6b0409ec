package app

import (
	"context"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/huifang/huifang/services/intake/internal/archive"
)

// RefreshTiers re-evaluates the customers that hold a tier, pageSize per
// transaction (rows other writers hold are skipped: their writer
// re-evaluates them), and returns how many changed. Rules are minimums over
// figures of the last year, which only fall as time passes, so customers
// without a tier cannot gain one this way; those who lost the ground for
// theirs lose it, announced with CustomerUpdated. It is the round of the
// tier-refresh loop (TIER_REFRESH).
func (a *App) RefreshTiers(ctx context.Context, pageSize int) (int, error) {
	changedTotal, after := 0, ""
	for {
		var n, pageChanged int
		err := a.inTx(ctx, func(tx pgx.Tx) error {
			type due struct {
				c       *archive.Customer
				changed []string
			}
			var saved []due
			var err error
			n, after, err = a.Store.UpdateTiered(ctx, tx, after, pageSize, func(c *archive.Customer) (bool, error) {
				changed, err := a.settle(ctx, tx, c, nil)
				if len(changed) > 0 && err == nil {
					// A customer whose CustomerUpdated would be too large
					// to publish (an archive from before MAX_EVENT_BYTES)
					// keeps its tier rather than stopping the refresh.
					if size := proto.Size(customerUpdated(c, changed)); size > a.EventLimit() {
						a.log().WarnContext(ctx, "tier change not saved: the customer is too large to announce; trim it (SetCustomerOwners)",
							"customer_id", c.ID, "bytes", size, "max_event_bytes", a.EventLimit())
						return false, nil
					}
				}
				if len(changed) > 0 {
					saved = append(saved, due{c, changed})
				}
				return len(changed) > 0, err
			})
			if err != nil {
				return err
			}
			for _, d := range saved {
				if err := a.announce(ctx, tx, d.c, d.changed, "tier refresh"); err != nil {
					return err
				}
			}
			pageChanged = len(saved)
			return nil
		})
		if err != nil {
			return changedTotal, err
		}
		changedTotal += pageChanged
		if n < pageSize {
			if changedTotal > 0 {
				a.log().InfoContext(ctx, "tiers refreshed", "changed", changedTotal)
			}
			return changedTotal, nil
		}
	}
}
