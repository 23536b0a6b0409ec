package app

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/services/feedback/internal/store"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

// Every visit brings feedback a VisitDue and a VisitAssigned or more, and
// their consumers keep no inbox row for them (inbox.Consumer.Idempotent):
// what the visit's rows keep, read under the visit's lock (store.KeptVisits,
// store.KeptAssignments), tells whether an event was applied.
//
// A visit keeps the id of the VisitDue that stored it: a VisitDue about a
// visit not stored is applied, and its id kept; one that finds its own id
// there changes nothing; any other (the scheduler emitting the visit again,
// a visit stored before the ids were kept) is claimed in the inbox and
// applied only when that claim is its first.
//
// A visit's assignment is gated by its time (visit.Assignment.Replaces): a
// VisitAssigned newer than the one kept is applied, an older one changes
// nothing, and the one kept changes nothing when it comes again. One of
// the same time as the one kept but another is the later heard, and
// replaces it, unless it was heard before: it is claimed in the inbox and
// applied only when that claim is its first, and the one it replaces is
// entered there (inbox.Displace), as its redelivery would otherwise find
// another of its time kept and replace it in turn.
//
// Outside a consumer's handler (no event id) the visit and the assignment
// are applied as they come.

// keptVisitsKey and keptAssignmentsKey are the context keys of what a
// batch read of its visits (PrepareVisits, PrepareAssignments).
type (
	keptVisitsKey      struct{}
	keptAssignmentsKey struct{}
)

// keptVisit is what a visit's row tells its VisitDue: whether it is
// stored, and the id of the VisitDue that stored it.
type keptVisit struct {
	stored bool
	first  string
}

// PrepareVisits locks the visits of a batch of VisitDue (keys, their
// tenants as LearnVisitTx has them) and reads what their rows keep, once
// for the batch; LearnVisitTx finds it in the context returned.
func (a *App) PrepareVisits(ctx context.Context, tx pgx.Tx, keys []visit.Key) (context.Context, error) {
	kept, err := keptVisits(ctx, tx, keys)
	if err != nil {
		return nil, err
	}
	return context.WithValue(ctx, keptVisitsKey{}, kept), nil
}

// PrepareAssignments is PrepareVisits for a batch of VisitAssigned and
// AssignVisitTx: the assignments the visits keep.
func (a *App) PrepareAssignments(ctx context.Context, tx pgx.Tx, keys []visit.Key) (context.Context, error) {
	kept, err := keptAssignments(ctx, tx, keys)
	if err != nil {
		return nil, err
	}
	return context.WithValue(ctx, keptAssignmentsKey{}, kept), nil
}

func keptVisits(ctx context.Context, tx pgx.Tx, keys []visit.Key) (map[visit.Key]keptVisit, error) {
	firsts, err := store.KeptVisits(ctx, tx, keys)
	if err != nil {
		return nil, err
	}
	kept := make(map[visit.Key]keptVisit, len(keys))
	for _, k := range keys {
		first, stored := firsts[k]
		kept[k] = keptVisit{stored: stored, first: first}
	}
	return kept, nil
}

func keptAssignments(ctx context.Context, tx pgx.Tx, keys []visit.Key) (map[visit.Key]*visit.Assignment, error) {
	as, err := store.KeptAssignments(ctx, tx, keys)
	if err != nil {
		return nil, err
	}
	kept := make(map[visit.Key]*visit.Assignment, len(keys))
	for _, k := range keys {
		kept[k] = nil
		if a, ok := as[k]; ok {
			kept[k] = &a
		}
	}
	return kept, nil
}

// keptFor returns the map of what the batch of ctx read (under ctxKey),
// with what is kept for k in it: read now, under k's lock, when the batch
// did not read it or ctx is of no batch (a message handled alone).
func keptFor[V any](ctx context.Context, tx pgx.Tx, ctxKey any, k visit.Key, read func(context.Context, pgx.Tx, []visit.Key) (map[visit.Key]V, error)) (map[visit.Key]V, error) {
	kept, _ := ctx.Value(ctxKey).(map[visit.Key]V)
	if _, ok := kept[k]; ok {
		return kept, nil
	}
	one, err := read(ctx, tx, []visit.Key{k})
	if err != nil {
		return nil, err
	}
	if kept == nil {
		return one, nil
	}
	kept[k] = one[k]
	return kept, nil
}

// stage sets kept[k] to v for the batch's next messages, and back should
// the message be rolled back to its savepoint.
func stage[V any](ctx context.Context, kept map[visit.Key]V, k visit.Key, v V) {
	was := kept[k]
	kept[k] = v
	inbox.OnRollback(ctx, func() { kept[k] = was })
}

// learns reports whether the VisitDue being applied, about v, applies;
// when it stores v, v keeps its id.
func learns(ctx context.Context, tx pgx.Tx, v *visit.Visit) (bool, error) {
	id := inbox.EventIDFrom(ctx)
	if id == "" {
		return true, nil
	}
	k := v.Key()
	kept, err := keptFor(ctx, tx, keptVisitsKey{}, k, keptVisits)
	if err != nil {
		return false, err
	}
	switch cur := kept[k]; {
	case !cur.stored:
		v.EventID = id
		stage(ctx, kept, k, keptVisit{stored: true, first: id})
		return true, nil
	case cur.first == id:
		return false, nil
	}
	return inbox.Claim(ctx, tx)
}

// assigns reports whether the VisitAssigned being applied, as, applies.
func assigns(ctx context.Context, tx pgx.Tx, as visit.Assignment) (bool, error) {
	if inbox.EventIDFrom(ctx) == "" {
		return true, nil
	}
	k := as.Key()
	kept, err := keptFor(ctx, tx, keptAssignmentsKey{}, k, keptAssignments)
	if err != nil {
		return false, err
	}
	// Compared as the row keeps them, to the microsecond.
	cur, at := kept[k], as.AssignedAt.Truncate(time.Microsecond)
	switch {
	case cur == nil || at.After(cur.AssignedAt):
	case at.Before(cur.AssignedAt), cur.EventID == as.EventID:
		return false, nil
	default: // of the same time as the one kept, another
		first, err := inbox.Claim(ctx, tx)
		if err != nil || !first {
			return false, err
		}
		if err := inbox.Displace(ctx, tx, cur.EventID); err != nil {
			return false, err
		}
	}
	stage(ctx, kept, k, &as)
	return true, nil
}
