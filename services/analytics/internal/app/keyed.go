package app

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// Every ingested event brings analytics a ServiceCompleted, a VisitPlanned
// and a VisitDue. Their effects are keyed by the event, so the consumer
// keeps no inbox row for them (consumer.Keyed): the entry the event moves
// first keeps its id (the service the id of the ServiceCompleted that
// stored it, a visit the ids of its first VisitPlanned and first VisitDue),
// written in the same statement as the entry and read under the entry's
// lock, and an event that finds its own id there was applied before and
// changes nothing. An event that finds another id there (a visit planned
// again, due again; a service announced twice), or an entry stored before
// the ids were kept, is claimed in the inbox instead, as any other event
// is, and applied only when that claim is its first. So every event of
// those subjects is applied once, in any order, redelivered, replayed or
// published again.

// replayKey is the context key of the event a rebuild's replay applies.
type replayKey struct{}

// replayed is the event a rebuild's replay applies: its inbox key.
type replayed struct{ durable, id string }

// Replaying returns ctx for a rebuild's replay of the event id (its inbox
// key) of durable, which is applied outside a consumer's handler: the
// events ApplyEventTx claims in the inbox are claimed there (in the
// shadow's inbox) with ClaimEvent.
func Replaying(ctx context.Context, durable, id string) context.Context {
	return context.WithValue(ctx, replayKey{}, replayed{durable: durable, id: id})
}

// eventIDOf returns the id of the event ApplyEventTx applies: the replay's
// or the consumer's; "" when it is applied otherwise (ApplyEvent), and is
// then applied as it comes.
func eventIDOf(ctx context.Context) string {
	if r, ok := ctx.Value(replayKey{}).(replayed); ok {
		return r.id
	}
	return inbox.EventIDFrom(ctx)
}

// claim writes the inbox row of the event being applied, and reports
// whether it is the first: in a replay, the shadow's; in the consumer's
// handler, its own (inbox.Claim, which writes nothing for an event that
// is not keyed, whose row the consumer wrote).
func claim(ctx context.Context, tx pgx.Tx) (bool, error) {
	if r, ok := ctx.Value(replayKey{}).(replayed); ok {
		return store.ClaimEvent(ctx, tx, r.durable, r.id)
	}
	return inbox.Claim(ctx, tx)
}

// firstService reports whether the ServiceCompleted being applied, about
// the service k, applies: false when it was applied before. A service is
// stored only by its ServiceCompleted, so one not stored has had none
// applied: the event's id is staged as the service's.
func firstService(ctx context.Context, tx pgx.Tx, m *move, k store.EntryKey) (bool, error) {
	id := eventIDOf(ctx)
	if id == "" {
		return true, nil
	}
	s, ok := m.l.services.get(k)
	if !ok {
		return false, errNotInSet
	}
	switch {
	case s.EventID == id:
		return false, nil
	case s.EventID == "" && m.l.newServices[k]:
		s.EventID = id
		m.l.services.put(k, s)
		return true, nil
	}
	return claim(ctx, tx)
}

// firstVisitEvent reports whether the VisitPlanned (due false) or VisitDue
// (due true) being applied, about the visit k, applies: false when it was
// applied before. Only a VisitPlanned makes a visit planned, and only a
// VisitDue makes it due, so a visit that is not has had none of the kind
// applied: the event's id is staged as the visit's first of its kind.
func firstVisitEvent(ctx context.Context, tx pgx.Tx, m *move, k store.EntryKey, due bool) (bool, error) {
	id := eventIDOf(ctx)
	if id == "" {
		return true, nil
	}
	v, ok := m.l.visits.get(k)
	if !ok {
		return false, errNotInSet
	}
	slot, applied := &v.Seen.Planned, v.Planned
	if due {
		slot, applied = &v.Seen.Due, v.Due
	}
	switch {
	case *slot == id:
		return false, nil
	case !applied:
		*slot = id
		m.l.visits.put(k, v)
		return true, nil
	}
	return claim(ctx, tx)
}

// visitKey returns the key of the visit ev is about.
func visitKey(ev rollup.VisitEvent) (store.EntryKey, error) {
	tenantID, id, err := rollup.VisitRef(ev)
	return store.EntryKey{Tenant: tenantID, ID: id}, err
}
