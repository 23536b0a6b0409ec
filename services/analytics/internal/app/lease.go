package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// ErrLeaseLost: this replica's term as the consumer's leader is over (its
// lease expired or another replica took it over); its writes are refused.
var ErrLeaseLost = errors.New("consumer: this replica no longer holds the consumer's lease (another replica took over)")

// Term is a replica's term as the consumer's leader: the lease it holds
// (name, holder, token). The leader puts it in the context of everything
// it runs; the consumer's commands check it in every transaction they write
// in (the fence), so a replica that lost the lease, paused or cut off,
// writes nothing even before it notices.
type Term struct {
	Lease store.Lease
	// Lost, when set, is called when a write finds the lease lost: the
	// replica stands down.
	Lost func(error)
}

type termKey struct{}

// WithTerm returns ctx carrying t.
func WithTerm(ctx context.Context, t Term) context.Context {
	return context.WithValue(ctx, termKey{}, t)
}

// TermOf returns the term ctx carries.
func TermOf(ctx context.Context) (Term, bool) {
	t, ok := ctx.Value(termKey{}).(Term)
	return t, ok
}

type fencedKey struct{}

// Fenced returns ctx for work within a transaction the consumer fenced
// already (inbox.Consumer.Fence runs first in each of its transactions and
// holds the lease until it ends): the commands do not check again, which is
// a statement less per event of a batch.
func Fenced(ctx context.Context) context.Context {
	return context.WithValue(ctx, fencedKey{}, true)
}

// Fence is fence for the consumer's own transactions (inbox.Consumer.Fence):
// the dead letters of a replica that lost the lease are refused too.
func (a *App) Fence(ctx context.Context, tx pgx.Tx) error { return a.fence(ctx, tx) }

// fence checks within tx that ctx's term still holds the consumer's lease
// and keeps it from being taken over until tx ends (store.HoldLease). A
// lost lease is a failure of the moment (inbox.Transient: the message is
// retried, by whichever replica leads, and never dead-lettered) and makes
// the replica stand down. Without a term in ctx (tests, tools that apply
// events directly) there is nothing to check.
func (a *App) fence(ctx context.Context, tx pgx.Tx) error {
	t, ok := TermOf(ctx)
	if !ok || ctx.Value(fencedKey{}) != nil {
		return nil
	}
	err := store.HoldLease(ctx, tx, t.Lease)
	if errors.Is(err, store.ErrLeaseLost) {
		err = fmt.Errorf("%w (term %d of %s)", ErrLeaseLost, t.Lease.Token, t.Lease.Holder)
		if t.Lost != nil {
			t.Lost(err)
		}
		return inbox.Transient(err)
	}
	return err
}
