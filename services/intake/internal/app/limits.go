package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/services/intake/internal/ingest"
)

// What intake carries onward is bounded by one limit, MAX_EVENT_BYTES: an
// input larger than it is refused at the door of every path (NATS, gRPC,
// webhook, replay) before it is decoded, and no event intake writes to the
// outbox is larger than it (add), so that every message intake publishes
// fits what NATS carries.

// HeaderRoom is what MAX_EVENT_BYTES leaves of the NATS server's
// max_payload for the headers of the messages intake publishes (content
// type, message id, trace context; a dead letter's reason and origin).
const HeaderRoom = 64 << 10

// MinEventBytes is the smallest MAX_EVENT_BYTES: below it ordinary events
// would be refused.
const MinEventBytes = 4 << 10

// EventLimit is the most bytes an event may have: MaxEventBytes, or
// ingest.DefaultMaxEventBytes when unset.
func (a *App) EventLimit() int {
	if a.MaxEventBytes > 0 {
		return a.MaxEventBytes
	}
	return ingest.DefaultMaxEventBytes
}

// CheckEventLimit checks MAX_EVENT_BYTES against the NATS server's
// max_payload (the connection's MaxPayload): an event of the limit, with its
// headers, must fit in one message.
func CheckEventLimit(limit int, maxPayload int64) error {
	switch {
	case limit < MinEventBytes:
		return fmt.Errorf("MAX_EVENT_BYTES (%d) must be at least %d", limit, MinEventBytes)
	case maxPayload > 0 && int64(limit) > maxPayload-HeaderRoom:
		return fmt.Errorf("MAX_EVENT_BYTES (%d) must leave %d bytes for headers under the NATS server's max_payload (%d): at most %d",
			limit, HeaderRoom, maxPayload, maxPayload-HeaderRoom)
	}
	return nil
}

// tooLargeError says an event intake was about to publish is larger than
// the limit; the command that made it refuses its input with refusedAs.
type tooLargeError struct {
	event       string
	size, limit int
}

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("the %s would have %d bytes, more than MAX_EVENT_BYTES (%d)", e.event, e.size, e.limit)
}

// add writes an event intake publishes to the outbox, within tx, unless its
// encoding is larger than the limit: then nothing is written and the error
// is a *tooLargeError.
func (a *App) add(ctx context.Context, tx pgx.Tx, subject, id string, ev proto.Message) error {
	if n, limit := proto.Size(ev), a.EventLimit(); n > limit {
		return &tooLargeError{event: string(ev.ProtoReflect().Descriptor().Name()), size: n, limit: limit}
	}
	_, err := outbox.Add(ctx, tx, outbox.Message{ID: id, Subject: subject, Payload: ev})
	return err
}

// refusedAs turns a too-large outgoing event into the refusal of the input
// that made it, naming field; other errors pass as they are.
func refusedAs(field string, err error) error {
	var tl *tooLargeError
	if errors.As(err, &tl) {
		return ingest.TooLargeToPublish(field, tl.event, tl.size, tl.limit)
	}
	return err
}
