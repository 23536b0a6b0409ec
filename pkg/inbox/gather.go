package inbox

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// gatherKey is the context key of a handler's *gathered.
type gatherKey struct{}

// gathered is what the handler of one message gathered for the end of its
// transaction (Gather), by key, keys in the order first gathered.
type gathered struct {
	keys  []string
	byKey map[string]*gathering
}

// gathering is what was gathered under one key, and the flush that writes it.
type gathering struct {
	flush func(ctx context.Context, tx pgx.Tx, vs []any) error
	vs    []any
}

func withGather(ctx context.Context) (context.Context, *gathered) {
	g := &gathered{byKey: map[string]*gathering{}}
	return context.WithValue(ctx, gatherKey{}, g), g
}

// Gather adds v to what is gathered under key for the end of the handler's
// transaction: just before it commits, once every message of a batch has
// been applied, flush runs once per key with the values of all the messages
// that applied, in the order they were gathered (a message rolled back to
// its savepoint takes its values with it). Work that many messages share and
// that one statement does for all of them, counters to add to say, is so
// written once per transaction rather than once per message. A flush that
// fails fails the transaction (a batch is then handled message by message).
// Outside a consumer's handler, flush runs at once with v alone. Every call
// with one key must pass the same flush.
func Gather[T any](ctx context.Context, tx pgx.Tx, key string, v T, flush func(ctx context.Context, tx pgx.Tx, vs []T) error) error {
	g, _ := ctx.Value(gatherKey{}).(*gathered)
	if g == nil {
		return flush(ctx, tx, []T{v})
	}
	e := g.byKey[key]
	if e == nil {
		e = &gathering{flush: func(ctx context.Context, tx pgx.Tx, vs []any) error {
			ts := make([]T, len(vs))
			for i, v := range vs {
				ts[i] = v.(T)
			}
			return flush(ctx, tx, ts)
		}}
		g.byKey[key] = e
		g.keys = append(g.keys, key)
	}
	e.vs = append(e.vs, v)
	return nil
}

// flushGathered runs the flushes of what the messages gs gathered, merged
// key by key, in the order the keys were first gathered.
func flushGathered(ctx context.Context, tx pgx.Tx, gs []*gathered) error {
	// What a flush gathers itself is written at once.
	ctx = context.WithValue(ctx, gatherKey{}, (*gathered)(nil))
	var keys []string
	merged := map[string]*gathering{}
	for _, g := range gs {
		for _, k := range g.keys {
			e := g.byKey[k]
			m := merged[k]
			if m == nil {
				m = &gathering{flush: e.flush}
				merged[k] = m
				keys = append(keys, k)
			}
			m.vs = append(m.vs, e.vs...)
		}
	}
	for _, k := range keys {
		if err := merged[k].flush(ctx, tx, merged[k].vs); err != nil {
			return fmt.Errorf("inbox: write what was gathered under %s: %w", k, err)
		}
	}
	return nil
}
