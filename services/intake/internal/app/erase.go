package app

import (
	"context"
	"slices"

	"github.com/jackc/pgx/v5"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/enum"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/ingest"
	"github.com/huifang/huifang/services/intake/internal/store"
)

// rejectedPage is how many refused inputs an erasure reads at a time while
// it looks for the ones naming the customer.
const rejectedPage = 500

// FieldErased names, in CustomerUpdated's changed fields, an erasure.
const FieldErased = "erased"

// EraseCustomer asks for a customer's erasure (the person's right to
// deletion).
type EraseCustomer struct {
	Tenant, CustomerID string
	// Reason says why (3 to 200 characters); written to the audit log.
	Reason string
}

// EraseCustomer makes a customer's contacts unreadable everywhere by
// destroying its data key (crypto-shredding: every sealed copy, backups
// included, can no longer be opened), opts it out of every channel, and
// announces CustomerUpdated with erased set, so that the scheduler and
// dispatch drop the masked forms they keep and contact it no more, and
// deletes the refused inputs that name it (by its external id, phone or
// email: they were sealed under the tenant's key, not the customer's); all
// in one transaction with its audit entry (customer.erase, with the reason
// and how many refused inputs went).
// Erasing an erased customer changes nothing more (erasedNow false) and is
// recorded too. The customer's id, services, tier and answers stay: counts
// and figures do not change.
func (a *App) EraseCustomer(ctx context.Context, in EraseCustomer) (c *archive.Customer, erasedNow bool, err error) {
	var l invalid.List
	if in.CustomerID == "" {
		l.Add("customer_id", "is required")
	}
	if !audit.ValidPurpose(in.Reason) {
		l.Add("reason", audit.PurposeRule)
	}
	if err := l.Err(); err != nil {
		return nil, false, err
	}
	err = a.inTx(ctx, func(tx pgx.Tx) error {
		before, err := a.Store.Customer(ctx, tx, store.CustomerKey{Tenant: in.Tenant, ID: in.CustomerID})
		if err != nil {
			return notFound("customer", err)
		}
		held := before.Name != "" || before.Phone != "" || before.Email != ""
		if err := a.Store.DestroyCustomerKey(ctx, tx, in.Tenant, in.CustomerID); err != nil {
			return notFound("customer", err)
		}
		c, err = a.updateCustomer(ctx, tx, in.Tenant, in.CustomerID, "EraseCustomer", func(c *archive.Customer) []string {
			p := c.Preferences.Clone()
			if p == nil {
				p = &archive.Preferences{}
			}
			for _, ch := range enum.Values[typesv1.Channel]() {
				if !slices.Contains(p.OptedOut, ch) {
					p.OptedOut = append(p.OptedOut, ch)
				}
			}
			changed := c.SetPreferences(p)
			if held || len(changed) > 0 {
				changed = append(changed, FieldErased)
			}
			return changed
		})
		if err != nil {
			return err
		}
		erasedNow = held || c.Version != before.Version
		if erasedNow {
			// The erasure again on a subject of its own, for the
			// consumers that follow no other change of the archive.
			ev := customerUpdated(c, []string{FieldErased})
			if err := a.add(ctx, tx, stream.SubjectCustomerErased, ev.EventId, ev); err != nil {
				return err
			}
		}
		refused, err := a.Store.DeleteRejectedNaming(ctx, tx, in.Tenant,
			ingest.Subject{ExternalID: before.ExternalID, Phone: before.Phone, Email: before.Email}, rejectedPage)
		if err != nil {
			return err
		}
		return a.auditTx(ctx, tx, in.Tenant, "customer.erase", audit.Target{Kind: "customer", ID: in.CustomerID},
			audit.Detail{"reason": in.Reason, "erased_now": erasedNow, "refused_inputs_deleted": refused})
	})
	if err != nil {
		return nil, false, err
	}
	return c, erasedNow, nil
}
