package app

import (
	"context"

	"github.com/jackc/pgx/v5"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/services/intake/internal/ingest"
)

// ReplayRejected runs a refused input through ingestion again.
type ReplayRejected struct {
	Tenant, ID string
	// Fixed, when set, replaces the stored payload.
	Fixed *eventsv1.ServiceCompleted
}

// ReplayRejected replays a refused input in a transaction of its own: fixed
// when given, else the stored payload as it is. An input that still breaks a
// rule is answered with its *invalid.Error and changes nothing; a stored one
// is marked replayed, once (ErrAlreadyReplayed after). The replay goes
// through the same idempotency: a meanwhile stored resend makes it a duplicate.
// A payload or fixed event larger than the limit is refused (see
// IngestServiceTx); a stored payload refused for its size is only replayed fixed.
func (a *App) ReplayRejected(ctx context.Context, in ReplayRejected) (Ingested, error) {
	var out Ingested
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = a.ReplayRejectedTx(ctx, tx, in)
		return err
	})
	return out, err
}

// ReplayRejectedTx is ReplayRejected within the caller's transaction.
func (a *App) ReplayRejectedTx(ctx context.Context, tx pgx.Tx, in ReplayRejected) (Ingested, error) {
	var out Ingested
	err := a.Store.UpdateRejected(ctx, tx, in.Tenant, in.ID, func(r *ingest.Rejected) error {
		if in.Fixed == nil && r.ReplayedAt == nil {
			// A payload over the limit is refused again without decoding it.
			if err := ingest.CheckSize(len(r.Payload), a.EventLimit()); err != nil {
				return err
			}
		}
		ev, err := r.Replay(in.Fixed)
		if err != nil {
			return err
		}
		if out, err = a.IngestServiceTx(ctx, tx, IngestService{Event: ev}); err != nil {
			return err
		}
		r.Replayed(out.ServiceID, a.Now())
		return nil
	})
	return out, notFound("rejected event", err)
}
