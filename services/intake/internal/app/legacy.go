package app

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// SealLegacy seals, at start, what was stored before encryption at rest:
// customers' clear contacts and refused payloads. It logs what it sealed.
func (a *App) SealLegacy(ctx context.Context) error {
	n, err := a.SealLegacyContacts(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		a.log().InfoContext(ctx, "encrypted the contacts of customers stored before encryption", "customers", n)
	}
	if n, err = a.SealLegacyRejected(ctx, DefaultBatch); err != nil {
		return err
	}
	if n > 0 {
		a.log().InfoContext(ctx, "encrypted the payloads of inputs refused before encryption", "rejected", n)
	}
	return nil
}

// SealLegacyContacts seals the contacts of customers stored before
// encryption, in one transaction, and returns how many.
func (a *App) SealLegacyContacts(ctx context.Context) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		var err error
		n, err = a.Store.SealLegacyContacts(ctx, tx, a.Now())
		return err
	})
	return n, err
}

// SealLegacyRejected seals the payloads of inputs refused before sealing,
// batch per transaction, and returns how many.
func (a *App) SealLegacyRejected(ctx context.Context, batch int) (int, error) {
	total := 0
	for {
		n := 0
		err := pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
			var err error
			n, err = a.Store.SealLegacyRejected(ctx, tx, batch)
			return err
		})
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
}
