package inbox

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// batchKey is the context key of a batch's *batchState.
type batchKey struct{}

// batchState is what the handlers of one batch's messages share: the
// messages, and what Memo loaded for them.
type batchState struct {
	msgs []jetstream.Msg
	memo map[any]any
}

func withBatch(ctx context.Context, msgs []jetstream.Msg) context.Context {
	return context.WithValue(ctx, batchKey{}, &batchState{msgs: msgs, memo: map[any]any{}})
}

// Batch returns the messages of the batch the handler of ctx applies its
// message in (ProcessBatch), its own among them, so that it can read at
// once what the handlers of all of them will need (Memo); nil outside a
// batch (a message handled alone).
func Batch(ctx context.Context) []jetstream.Msg {
	if b, ok := ctx.Value(batchKey{}).(*batchState); ok {
		return b.msgs
	}
	return nil
}

// Memo returns what load returned for key in the batch the handler of ctx
// runs in, calling load only the first time (a load that fails is tried
// again by the next handler that asks): what many messages of a batch read,
// they read once. Outside a batch, load runs every time.
//
// What load reads is read within the transaction of the first message that
// asked, and kept when that message is rolled back to its savepoint: load
// must only read, and the handlers must keep in mind that the batch's own
// writes since are not in it.
func Memo[T any](ctx context.Context, key any, load func() (T, error)) (T, error) {
	b, ok := ctx.Value(batchKey{}).(*batchState)
	if !ok {
		return load()
	}
	if v, ok := b.memo[key]; ok {
		return v.(T), nil
	}
	v, err := load()
	if err == nil {
		b.memo[key] = v
	}
	return v, err
}
