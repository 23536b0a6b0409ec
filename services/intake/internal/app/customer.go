package app

import (
	"context"
	"errors"
	"slices"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/store"
	"github.com/huifang/huifang/services/intake/internal/tier"
)

// What every change of a customer ends with, whichever use case made it:
// the tier re-evaluated on the current figures (settle, inside the store's
// update closure, so the decision is taken under the row lock), and, once
// saved, CustomerUpdated (announce).

// settle loads c's figures, re-evaluates its tier and concludes the change
// (archive.Customer.Settle): it returns the changed fields, none when there
// is nothing to save or announce.
func (a *App) settle(ctx context.Context, q postgres.Querier, c *archive.Customer, changed []string) ([]string, error) {
	now := a.Now()
	if err := a.Store.Figures(ctx, q, c.TenantID, tier.ScopeAt(now), []*archive.Customer{c}); err != nil {
		return nil, err
	}
	return c.Settle(a.Rules, changed, now), nil
}

// customerUpdated is the CustomerUpdated of a settled change of c.
func customerUpdated(c *archive.Customer, changed []string) *eventsv1.CustomerUpdated {
	return &eventsv1.CustomerUpdated{
		EventId: outbox.NewEventID(), TenantId: c.TenantID, Customer: c.Proto(), Version: c.Version,
		ChangedFields: changed, UpdatedAt: timestamppb.New(c.UpdatedAt), Erased: slices.Contains(changed, FieldErased),
	}
}

// auditPreferences records a change of c's contact preferences (consent
// and opt-outs) with its source and time: customer.preferences, the
// archive's version, the channels opted out of after it, and where it came
// from (the caller is the entry's actor; an upstream system's event, an
// import, an erasure are named in source).
func (a *App) auditPreferences(ctx context.Context, tx pgx.Tx, c *archive.Customer, source string) error {
	return audit.Append(ctx, tx, a.preferencesEntry(ctx, c, source))
}

// preferencesEntry is auditPreferences's entry, for a caller that appends
// several at once.
func (a *App) preferencesEntry(ctx context.Context, c *archive.Customer, source string) audit.Entry {
	opted := []string{}
	if c.Preferences != nil {
		for _, ch := range c.Preferences.OptedOut {
			opted = append(opted, ch.String())
		}
	}
	return audit.Entry{Tenant: c.TenantID, Actor: audit.By(ctx, Service), Action: "customer.preferences",
		Target: audit.Target{Kind: "customer", ID: c.ID}, Detail: audit.Detail{"version": c.Version, "opted_out": opted, "source": source},
		At: a.Now()}
}

// announce writes CustomerUpdated for a saved change of c and re-evaluates
// the referrer c newly names (seed 000: referrals count toward the key tier).
// A CustomerUpdated larger than the limit is not written: the error is a
// *tooLargeError, which the command turns into the refusal of its input
// (refusedAs), rolling the change back. A change of the contact
// preferences is written to the audit log with source (auditPreferences),
// unless source is empty: an ingested service's, which its record names.
func (a *App) announce(ctx context.Context, tx pgx.Tx, c *archive.Customer, changed []string, source string) error {
	if len(changed) == 0 {
		return nil
	}
	ev := customerUpdated(c, changed)
	if err := a.add(ctx, tx, stream.SubjectCustomerUpdated, ev.EventId, ev); err != nil {
		return err
	}
	if source != "" && slices.Contains(changed, archive.FieldPreferences) {
		if err := a.auditPreferences(ctx, tx, c, source); err != nil {
			return err
		}
	}
	if ref := c.NewReferrer(changed); ref != "" {
		return a.referred(ctx, tx, c.TenantID, ref, c.ExternalID)
	}
	return nil
}

// referred re-evaluates the tier of the customer ref (an external id) that
// the customer by has newly named as its referrer, and announces a change;
// nothing when ref is not (yet) in the archive.
func (a *App) referred(ctx context.Context, tx pgx.Tx, tenantID, ref, by string) error {
	var refChanged []string
	referrer, err := a.Store.UpdateCustomerByExternalID(ctx, tx, tenantID, ref, func(r *archive.Customer) (bool, error) {
		var err error
		refChanged, err = a.settle(ctx, tx, r, nil)
		return len(refChanged) > 0, err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil // not (yet) in the archive: its own first change evaluates it
	}
	if err != nil {
		return err
	}
	return a.announce(ctx, tx, referrer, refChanged, "referral by "+by)
}
