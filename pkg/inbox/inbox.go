// Package inbox runs durable JetStream pull consumers whose effects happen
// exactly once: each handled event id is written to the inbox table in the
// same transaction as the handler's effect, so a redelivered event changes
// nothing. Messages the handler refuses are dead-lettered with the reason.
package inbox

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/pkg/tenant"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations creates the inbox and rejected_events tables in a service's schema.
func Migrations() postgres.Migrations {
	sub, _ := fs.Sub(migrations, "migrations")
	return postgres.Migrations{Set: "inbox", FS: sub}
}

// Handler applies one message within tx. Returning an *invalid.Error
// dead-letters the message; any other error is retried.
type Handler func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error

// Consumer is a durable pull consumer with an inbox. Build one with Of or
// OfEvents (typed events) or fill in Handle; the runtime (app.Runtime.Consume)
// or a test fills in Service, Pool, JS, Log and Relay.
type Consumer struct {
	// Service names the owner: the dead-letter subject and the rejected rows say it.
	Service string
	// Durable is the consumer's durable name, also its key in the inbox table.
	Durable string
	Stream  string
	// Subjects filter the stream.
	Subjects []string
	Handle   Handler
	Pool     *pgxpool.Pool
	JS       jetstream.JetStream
	Log      *slog.Logger
	// Relay, when set, is woken after each commit so outbox rows leave at once.
	Relay *outbox.Relay
	// MaxDeliver is how often a failing message is tried before it is dead-lettered.
	MaxDeliver int
	// Workers is how many messages are handled at once; 1 (the default)
	// keeps the stream's order.
	Workers int
	// Tenant finds the tenant of a refused message for the rejected row; "default" when nil.
	Tenant func(msg jetstream.Msg) string
	// ID, when set, gives the id that deduplicates a message (its inbox
	// key) instead of EventID: a consumer of upstream input keys it by what
	// names the event upstream (tenant, source system, the source's id), so
	// that two systems' ids never collide. An empty result falls back to EventID.
	ID func(msg jetstream.Msg) string
	// Seal, when set, transforms the payload of a refused message before it
	// is stored in rejected_events (a service encrypts personal data at rest
	// with it); see Rejection.Seal.
	Seal Sealer
}

// Sealer turns a refused payload into what rejected_events keeps (for
// instance its encryption); an error fails the rejection, which is retried.
type Sealer func(ctx context.Context, payload []byte) ([]byte, error)

// Of returns a consumer of one subject whose payloads are protobuf events
// of type E (as the outbox publishes them): each message is decoded once; one
// that is not an E is dead-lettered with the reason, under the tenant it
// names when that can be read.
func Of[E any, PE interface {
	*E
	proto.Message
}](durable, subject string, handle func(ctx context.Context, tx pgx.Tx, ev PE) error) *Consumer {
	return &Consumer{
		Durable:  durable,
		Stream:   stream.Of(subject),
		Subjects: []string{subject},
		Handle: func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
			ev := PE(new(E))
			if err := Decode(msg.Data(), ev); err != nil {
				return err
			}
			return handle(ctx, tx, ev)
		},
		Tenant: func(msg jetstream.Msg) string {
			ev := PE(new(E))
			if proto.Unmarshal(msg.Data(), ev) != nil {
				return ""
			}
			return tenant.Of(ev)
		},
	}
}

// Events names the protobuf event each subject carries: subject → a
// function returning an empty event.
type Events map[string]func() proto.Message

// Decode reads the event a message on subject carries; an unknown subject
// or a payload that is not its event is an *invalid.Error.
func (e Events) Decode(subject string, data []byte) (proto.Message, error) {
	newEvent, ok := e[subject]
	if !ok {
		return nil, invalid.New("subject", "is not one this consumer reads: "+subject)
	}
	ev := newEvent()
	if err := Decode(data, ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// OfEvents returns one consumer of several subjects (in stream order, one
// worker) whose payloads are the events named in events, decoded once.
func OfEvents(durable string, events Events, handle func(ctx context.Context, tx pgx.Tx, ev proto.Message) error) *Consumer {
	subjects := slices.Sorted(maps.Keys(events))
	name := ""
	if len(subjects) > 0 {
		name = stream.Of(subjects[0])
	}
	return &Consumer{
		Durable:  durable,
		Stream:   name,
		Subjects: subjects,
		Handle: func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
			ev, err := events.Decode(msg.Subject(), msg.Data())
			if err != nil {
				return err
			}
			return handle(ctx, tx, ev)
		},
		Tenant: func(msg jetstream.Msg) string {
			ev, err := events.Decode(msg.Subject(), msg.Data())
			if err != nil {
				return ""
			}
			return tenant.Of(ev)
		},
	}
}

// Decode reads a protobuf payload into ev, or returns the *invalid.Error
// that dead-letters it.
func Decode(data []byte, ev proto.Message) error {
	if err := proto.Unmarshal(data, ev); err != nil {
		return invalid.New("payload", fmt.Sprintf("must be a %s in protobuf: %v", ev.ProtoReflect().Descriptor().FullName(), err))
	}
	return nil
}

// Run consumes until ctx ends, with JetStream's continuous pull
// (Messages): Workers goroutines take messages from one iterator. When ctx
// ends it stops pulling, finishes the messages it already holds and
// returns nil. When the server ends the iterator (the consumer was deleted,
// the connection closed), it creates the consumer again and goes on.
func (c *Consumer) Run(ctx context.Context) error {
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 5
	}
	workers := max(1, c.Workers)
	cfg := jetstream.ConsumerConfig{
		Durable:   c.Durable,
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   30 * time.Second,
		// The server never gives up on a message: the consumer decides
		// (dead-letter after MaxDeliver failures, never for transient ones).
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if len(c.Subjects) == 1 {
		// A single filter works on servers older than 2.10 too.
		cfg.FilterSubject = c.Subjects[0]
	} else {
		cfg.FilterSubjects = c.Subjects
	}
	delay := 200 * time.Millisecond
	for ctx.Err() == nil {
		cons, err := c.create(ctx, cfg)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(pullBatch * workers))
		if err != nil {
			c.Log.WarnContext(ctx, "pulling messages failed, retrying", "consumer", c.Durable, "err", err, "in", delay)
			if !sleep(ctx, delay) {
				return nil
			}
			delay = min(delay*2, 5*time.Second)
			continue
		}
		delay = 200 * time.Millisecond
		c.pull(ctx, it, workers)
		if ctx.Err() == nil {
			c.Log.WarnContext(ctx, "the consumer stopped delivering; creating it again", "consumer", c.Durable)
			if !sleep(ctx, delay) {
				return nil
			}
		}
	}
	return nil
}

// pullBatch is how many messages one worker keeps buffered.
const pullBatch = 64

// pull hands the iterator's messages to workers until the iterator closes:
// when ctx ends, it is drained, so the messages already buffered are handled.
func (c *Consumer) pull(ctx context.Context, it jetstream.MessagesContext, workers int) {
	stop := context.AfterFunc(ctx, it.Drain)
	defer stop()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				msg, err := it.Next()
				if err != nil {
					if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
						return
					}
					if ctx.Err() == nil {
						c.Log.WarnContext(ctx, "pulling messages", "consumer", c.Durable, "err", err)
					}
					continue
				}
				c.Process(context.WithoutCancel(ctx), msg)
			}
		}()
	}
	wg.Wait()
	it.Stop()
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// create makes the durable consumer, retrying with backoff while the server
// is slow or away, so that a busy NATS does not stop the service.
func (c *Consumer) create(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	delay := 200 * time.Millisecond
	for {
		cons, err := c.JS.CreateOrUpdateConsumer(ctx, c.Stream, cfg)
		if err == nil {
			return cons, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("inbox: consumer %s: %w", c.Durable, err)
		}
		c.Log.WarnContext(ctx, "creating the consumer failed, retrying", "consumer", c.Durable, "err", err, "in", delay)
		if !sleep(ctx, delay) {
			return nil, fmt.Errorf("inbox: consumer %s: %w", c.Durable, ctx.Err())
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// EventID is the id that deduplicates msg: its Nats-Msg-Id, or else a hash
// of its subject and payload (upstream systems rarely set an id; a resend of
// the same bytes is the same event). Stream sequences are not used: they
// start again when a stream is recreated.
func EventID(msg jetstream.Msg) string {
	if id := msg.Headers().Get(jetstream.MsgIDHeader); id != "" {
		return id
	}
	h := sha256.New()
	h.Write([]byte(msg.Subject()))
	h.Write([]byte{0})
	h.Write(msg.Data())
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

var errDuplicate = errors.New("inbox: already handled")

// eventID is the inbox key of msg: ID's, else EventID's.
func (c *Consumer) eventID(msg jetstream.Msg) string {
	if c.ID != nil {
		if id := c.ID(msg); id != "" {
			return id
		}
	}
	return EventID(msg)
}

type eventIDKey struct{}

// EventIDFrom returns the id of the event a handler is applying (the
// message's Nats-Msg-Id, or the hash EventID makes), "" outside a handler.
func EventIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(eventIDKey{}).(string)
	return id
}

// Process handles one message and acknowledges it unless it must be
// retried. A panic in the handler is recovered, logged with its stack and
// counted as a failure: the message is tried again (and dead-lettered after
// MaxDeliver tries), the process goes on.
func (c *Consumer) Process(ctx context.Context, msg jetstream.Msg) {
	ctx = stream.ExtractTrace(ctx, msg.Headers())
	ctx, span := otel.Tracer("github.com/huifang/huifang/pkg/inbox").Start(ctx, "consume "+msg.Subject(),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", msg.Subject())))
	defer span.End()

	id := c.eventID(msg)
	ctx = context.WithValue(ctx, eventIDKey{}, id)
	err := c.inTx(ctx, id, func(tx pgx.Tx) error { return c.handle(ctx, tx, msg) })
	switch {
	case err == nil:
		c.ack(ctx, msg)
		if c.Relay != nil {
			c.Relay.Notify()
		}
	case errors.Is(err, errDuplicate):
		c.Log.DebugContext(ctx, "duplicate event ignored", "consumer", c.Durable, "event_id", id)
		c.ack(ctx, msg)
	default:
		bad, isBad := invalid.As(err)
		if IsTransient(err) {
			md, _ := msg.Metadata()
			attempt := uint64(1)
			if md != nil {
				attempt = md.NumDelivered
			}
			delay := min(time.Duration(attempt)*500*time.Millisecond, 30*time.Second)
			c.Log.DebugContext(ctx, "handler failed for the moment, will retry", "consumer", c.Durable, "event_id", id, "attempt", attempt, "err", err)
			_ = msg.NakWithDelay(delay)
			return
		}
		if !isBad {
			md, mdErr := msg.Metadata()
			if mdErr == nil && int(md.NumDelivered) < c.MaxDeliver {
				delay := time.Duration(md.NumDelivered) * 500 * time.Millisecond
				c.Log.WarnContext(ctx, "handler failed, will retry", "consumer", c.Durable, "event_id", id, "attempt", md.NumDelivered, "err", err)
				_ = msg.NakWithDelay(delay)
				return
			}
			bad = invalid.New("", "gave up after repeated failures: "+err.Error())
		}
		if dlErr := c.deadLetter(ctx, msg, id, bad); dlErr != nil {
			c.Log.ErrorContext(ctx, "dead-lettering failed, will retry", "consumer", c.Durable, "event_id", id, "err", dlErr)
			_ = msg.NakWithDelay(time.Second)
			return
		}
		c.Log.WarnContext(ctx, "message dead-lettered", "consumer", c.Durable, "event_id", id, "reason", bad.Error())
		c.ack(ctx, msg)
		if c.Relay != nil {
			c.Relay.Notify()
		}
	}
}

// handle runs the handler, turning a panic into an error (the transaction
// rolls back).
func (c *Consumer) handle(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.Log.ErrorContext(ctx, "handler panicked; the message will be retried", "consumer", c.Durable, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("inbox: handler panicked: %v", p)
		}
	}()
	return c.Handle(ctx, tx, msg)
}

func (c *Consumer) ack(ctx context.Context, msg jetstream.Msg) {
	if err := msg.DoubleAck(ctx); err != nil {
		c.Log.WarnContext(ctx, "ack failed; the message will come again and be ignored", "consumer", c.Durable, "err", err)
	}
}

// inTx runs fn in a transaction that first claims id in the inbox.
func (c *Consumer) inTx(ctx context.Context, id string, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, c.Pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, c.Durable, id)
		if err != nil {
			return fmt.Errorf("inbox: claim %s: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return errDuplicate
		}
		return fn(tx)
	})
}

// deadLetter records the refused message in rejected_events and, through the
// outbox, on huifang.deadletter.<service>, in one transaction with its inbox row.
func (c *Consumer) deadLetter(ctx context.Context, msg jetstream.Msg, id string, bad *invalid.Error) error {
	tenantID := tenant.Default
	if c.Tenant != nil {
		if t := c.Tenant(msg); t != "" {
			tenantID = t
		}
	}
	err := c.inTx(ctx, id, func(tx pgx.Tx) error {
		_, err := Reject(ctx, tx, Rejection{
			Service:     c.Service,
			Tenant:      tenantID,
			Source:      msg.Subject(),
			EventID:     id,
			ContentType: msg.Headers().Get(stream.HeaderContentType),
			Payload:     msg.Data(),
			Err:         bad,
			Seal:        c.Seal,
		})
		return err
	})
	if errors.Is(err, errDuplicate) {
		return nil
	}
	return err
}

// Rejection is an input a service refused.
type Rejection struct {
	Service     string
	Tenant      string
	Source      string
	EventID     string
	ContentType string
	Payload     []byte
	Err         *invalid.Error
	// Seal, when set, transforms Payload for the rejected_events row only
	// (encryption at rest); the dead-letter message carries Payload as it
	// arrived, since readers of the dead-letter stream hold no service keys
	// (the same bytes are in the stream they came from anyway).
	Seal Sealer
}

// Reject stores r in rejected_events and puts it on the service's dead-letter
// subject through the outbox, within tx. It returns the rejected row's id.
func Reject(ctx context.Context, tx pgx.Tx, r Rejection) (string, error) {
	rowID := outbox.NewEventID()
	field := ""
	if len(r.Err.Violations) > 0 {
		field = r.Err.Violations[0].Field
	}
	if r.Payload == nil {
		r.Payload = []byte{}
	}
	stored := r.Payload
	if r.Seal != nil {
		var err error
		if stored, err = r.Seal(ctx, r.Payload); err != nil {
			return "", fmt.Errorf("inbox: seal rejected payload: %w", err)
		}
		if stored == nil {
			stored = []byte{}
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rejected_events (id, tenant_id, source, event_id, field, reason, content_type, payload)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, rowID, r.Tenant, r.Source, r.EventID, field, r.Err.Error(), r.ContentType, stored); err != nil {
		return "", fmt.Errorf("inbox: record rejection: %w", err)
	}
	h := nats.Header{}
	h.Set(stream.HeaderReason, r.Err.Error())
	h.Set(stream.HeaderField, field)
	h.Set(stream.HeaderOrigSubject, r.Source)
	h.Set(stream.HeaderService, r.Service)
	if r.ContentType != "" {
		h.Set(stream.HeaderContentType, r.ContentType)
	}
	if err := outbox.AddRaw(ctx, tx, rowID, stream.DeadLetterSubject(r.Service), r.Payload, h); err != nil {
		return "", err
	}
	return rowID, nil
}

// transientError marks a failure of the moment.
type transientError struct{ err error }

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

// Transient marks err as a failure of the moment (a dependency away, a
// lease this replica no longer holds): the message is tried again later,
// without limit, and never dead-lettered for it. nil stays nil.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return transientError{err}
}

// IsTransient tells whether err (or an error it wraps) was marked Transient.
func IsTransient(err error) bool {
	var t transientError
	return errors.As(err, &t)
}
