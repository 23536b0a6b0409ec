package app

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
)

// A ServiceCompleted keeps no inbox row of the planning consumer
// (consumer.New: inbox.Consumer.Idempotent). Planning a service first
// records it, and its record keeps the id of the event that recorded it
// (services.event_id): an event that finds its own id there was planned
// before and changes nothing, publishes nothing. An event whose service is
// not recorded is its first: it is planned, and its id recorded with the
// service. Any other (the same service sent again under another event id,
// a service recorded before the ids were kept or by no event) is claimed
// in the inbox (inbox.Claim) and planned only when that claim is its
// first, as every event was.
//
// A batch reads which of its services are recorded, and by which event, with
// its customers (Prepare: no statement of its own) and records them just
// before its commit (Batch.write); a service it read as not recorded that a
// concurrent transaction recorded meanwhile (the same event applied twice
// at once) fails the batch (errRecordedMeanwhile), whose messages are then
// handled one by one. A message handled alone records its service first,
// so that a concurrent transaction applying the same event waits for it
// and then finds its id.

// record is what planning an event keeps in its service's record: the
// event's id when it is the service's first (event), and whether the
// record is written already (stored).
type record struct {
	event  string
	stored bool
}

// errRecordedMeanwhile: a service a batch read as not recorded was recorded
// by a concurrent transaction meanwhile; the batch fails, and its messages
// are handled one by one (each then finds the record).
var errRecordedMeanwhile = errors.New("app: a service was recorded by a concurrent transaction meanwhile; its batch is handled one by one")

// firstOf reports whether the ServiceCompleted being planned, about svc,
// applies (false: it was planned before, or by a concurrent transaction
// that committed), and what its service's record keeps of it. Outside a
// consumer (no event id) every planning applies and the record keeps no id.
func firstOf(ctx context.Context, tx pgx.Tx, svc policy.Service) (bool, record, error) {
	id := inbox.EventIDFrom(ctx)
	b := batchOf(ctx)
	if id == "" || b == nil {
		return true, record{}, nil
	}
	k := store.ServiceKey{svc.Tenant, svc.ID}
	switch {
	case hasService(b, k):
		// Recorded by an earlier message of the batch: another event
		// (a batch applies an event it holds twice once).
	case b.read[k]:
		by, recorded := b.recorded[k]
		if !recorded {
			return true, record{event: id}, nil
		}
		if by == id {
			return false, record{}, nil
		}
	default:
		// A message alone: the record first.
		recorded, by, err := store.RecordServiceOf(ctx, tx, svc, id)
		switch {
		case err != nil:
			return false, record{}, err
		case recorded:
			return true, record{event: id, stored: true}, nil
		case by == id:
			return false, record{}, nil
		}
	}
	first, err := inbox.Claim(ctx, tx)
	return first, record{}, err
}
