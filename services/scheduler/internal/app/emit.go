package app

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
)

// emit writes an event into the outbox within tx: with the other events of
// its firing round (withEvents), or of its planning batch (just before the
// commit, inbox.Gather), in one statement; else at once. The events keep
// their order, and each the trace context of ctx.
func emit(ctx context.Context, tx pgx.Tx, msg outbox.Message) error {
	if e, ok := ctx.Value(eventsKey{}).(*events); ok {
		e.msgs = append(e.msgs, traced(ctx, msg))
		return nil
	}
	if b := batchOf(ctx); b != nil {
		return inbox.Gather(ctx, tx, "scheduler.visit-events", traced(ctx, msg), b.addEvents)
	}
	_, err := outbox.Add(ctx, tx, msg)
	return err
}

// traced is msg with the trace context of ctx in its headers, where
// outbox.AddMany, writing it with others, keeps it.
func traced(ctx context.Context, msg outbox.Message) outbox.Message {
	h := nats.Header{}
	for k, vs := range msg.Header {
		h[k] = vs
	}
	stream.InjectTrace(ctx, h)
	msg.Header = h
	return msg
}

func addEvents(ctx context.Context, tx pgx.Tx, msgs []outbox.Message) error {
	_, err := outbox.AddMany(ctx, tx, msgs)
	return err
}

type eventsKey struct{}

// events are the events of a firing round, written together at its end.
type events struct{ msgs []outbox.Message }

// withEvents returns ctx gathering the events emitted through it, and
// whether it is the first to (its caller writes them: events.write);
// within a round that gathers already, the events join that round's.
func withEvents(ctx context.Context) (context.Context, *events, bool) {
	if e, ok := ctx.Value(eventsKey{}).(*events); ok {
		return ctx, e, false
	}
	e := &events{}
	return context.WithValue(ctx, eventsKey{}, e), e, true
}

// mark is where the events emitted from now on begin.
func (e *events) mark() int { return len(e.msgs) }

// rollback forgets the events emitted since mark (their savepoint was
// rolled back).
func (e *events) rollback(mark int) { e.msgs = e.msgs[:mark] }

// write writes the events gathered into the outbox, in one statement.
func (e *events) write(ctx context.Context, tx pgx.Tx) error {
	if len(e.msgs) == 0 {
		return nil
	}
	_, err := outbox.AddMany(ctx, tx, e.msgs)
	e.msgs = nil
	return err
}
