package inbox

import "context"

// rollbackKey is the context key of a batch message's *rollbacks.
type rollbackKey struct{}

// rollbacks are what a message's handler asked to run should the message
// be rolled back to its savepoint (OnRollback).
type rollbacks struct{ fns []func() }

func withRollback(ctx context.Context) (context.Context, *rollbacks) {
	r := &rollbacks{}
	return context.WithValue(ctx, rollbackKey{}, r), r
}

// run calls the functions, the last registered first.
func (r *rollbacks) run() {
	for i := len(r.fns) - 1; i >= 0; i-- {
		r.fns[i]()
	}
	r.fns = nil
}

// OnRollback registers fn to run when the message the handler of ctx
// applies in a batch (ProcessBatch) is rolled back to its savepoint: its
// handler failed, or a statement it held back (postgres.Defer) failed after
// the handler returned. A handler that changes memory the batch's other
// messages share (what Memo loaded, values it keeps for the end of the
// transaction) puts it back with fn, so that the batch's commit holds
// nothing of a message that did not apply. The functions run the last
// registered first. Outside a batch, and when a batch's transaction fails
// whole, fn never runs: the transaction is gone, and a batch's memory is not
// kept past it (its messages are handled again, each alone, with none).
func OnRollback(ctx context.Context, fn func()) {
	if r, ok := ctx.Value(rollbackKey{}).(*rollbacks); ok {
		r.fns = append(r.fns, fn)
	}
}
