// Package inbox runs durable JetStream pull consumers whose effects happen
// exactly once: each handled event id is written to the inbox table in the
// same transaction as the handler's effect, so a redelivered event changes
// nothing (a consumer whose effects are keyed by the event or by a version
// writes none: Consumer.Idempotent, Claim). Messages the handler refuses
// are dead-lettered with the reason.
package inbox

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"strings"
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
	"github.com/huifang/huifang/pkg/loop"
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

// Notifier is woken after a commit: an outbox relay (*outbox.Relay).
type Notifier interface{ Notify() }

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
	// Relay, when set, is woken after each commit that wrote to the outbox
	// (outbox.Track), so that its rows leave at once; a commit that wrote
	// nothing there wakes no relay round.
	Relay Notifier
	// MaxDeliver is how often a failing message is tried before it is dead-lettered.
	MaxDeliver int
	// Backoff is the first pause before a failed message is tried again
	// (it doubles with each failure, up to 30 s); 500 ms when zero.
	Backoff time.Duration
	// Workers is how many messages are handled at once; 1 (the default)
	// keeps the stream's order.
	Workers int
	// Batch is how many messages a worker applies in one transaction (one
	// savepoint each, one commit; ProcessBatch); 0 or 1 handles each
	// message in a transaction of its own. A message that fails in a batch
	// is handled alone after the batch, so it may be applied after
	// messages that came behind it.
	Batch int
	// Key, when set, names what a message's handler locks (intake: the
	// customer): with several workers, the messages of one key always go
	// to the same worker, in the stream's order, so that two workers'
	// batches do not wait on each other's rows for them.
	Key func(msg jetstream.Msg) string
	// Prepare, when set, runs in a batch's transaction (ProcessBatch) once
	// its messages are claimed and before any is applied, given the claimed
	// messages in order: a consumer reads there, in one statement for the
	// whole batch, what its messages' handlers would each read, and returns
	// the context they run in (they find what it read there; Gather writes
	// what they changed once before the commit). An error fails the batch,
	// whose messages are then handled one by one (Process), without Prepare.
	Prepare func(ctx context.Context, tx pgx.Tx, msgs []jetstream.Msg) (context.Context, error)
	// BatchWait is how long a worker waits, after the first message of a
	// batch, for more (DefaultBatchWait when zero): a batch is Batch
	// messages or what arrived within BatchWait.
	BatchWait time.Duration
	// Tenant finds the tenant of a refused message for the rejected row; "default" when nil.
	Tenant func(msg jetstream.Msg) string
	// DatabaseUp, when set, says whether the service's database is up (the
	// runtime's dependency watcher): while it is not, every failure is one of
	// the moment.
	DatabaseUp func() bool
	// Provision, when set, creates the streams again (the runtime's); it is
	// called when the durable cannot be created because its stream is gone.
	Provision func(ctx context.Context) error
	// Fence, when set, runs first in every transaction the consumer opens
	// (the handler's and a dead letter's): a consumer that may write only
	// while it holds a lease checks it there, and returns a Transient error
	// when it no longer does.
	Fence func(ctx context.Context, tx pgx.Tx) error
	// ID, when set, gives the id that deduplicates a message (its inbox
	// key) instead of EventID: a consumer of upstream input keys it by what
	// names the event upstream (tenant, source system, the source's id), so
	// that two systems' ids never collide. An empty result falls back to EventID.
	ID func(msg jetstream.Msg) string
	// Seal, when set, transforms the payload of a refused message before it
	// is stored in rejected_events (a service encrypts personal data at rest
	// with it); see Rejection.Seal.
	Seal Sealer
	// Forget removes the messages of the consumer's subjects from their
	// stream once they are handled and acknowledged, stored or refused:
	// while it runs, the consumer purges the stream below its durable's
	// acknowledgement floor (every message before it acknowledged) at
	// most every ForgetEvery, so the stream holds only what is not handled
	// yet, and the server drops a storage block once every message in it
	// is gone. (One purge a round instead of a deletion per message: a
	// deletion costs the server a request and a write of its own, more than
	// the rest of the message's handling. A secure erase of each message
	// rewrites its block and stalls a busy ingress.) Intake's ingress
	// carries the upstream systems' clear contacts, which Huifang keeps only
	// sealed (docs/privacy.md). A purge that fails is logged and done at the
	// next round; the stream's limits drop what is left.
	Forget bool
	// ForgetEvery is the most often Forget purges (DefaultForgetEvery when zero).
	ForgetEvery time.Duration
	// Idempotent says that applying a message twice changes nothing, also
	// twice at once in two transactions and after later messages changed
	// the state: every effect of the handler is keyed by the event (a row
	// whose key is the event's id or what it is about, inserted ON
	// CONFLICT DO NOTHING; values set, never added to) or gated by a
	// version that only goes up (kept only when newer than the one kept,
	// read under a lock of the row it is kept in), and what it publishes
	// or appends (outbox rows get fresh ids; audit entries, counts) follows
	// only such a change: an insert that inserted, a version that was
	// newer. Such a consumer writes no inbox entries, which saves a row and
	// its index entries per message; a batch still applies a message it
	// holds twice only once, and failures and dead letters are counted as
	// for any consumer. A handler of such a consumer whose effect is not
	// keyed for some messages (an erasure's redaction and audit entry)
	// writes the message's inbox entry itself first, for those only
	// (Claim), and the entry of a message whose effect it replaces when
	// nothing kept tells that one was applied (Displace). A consumer that
	// counts or publishes otherwise is not idempotent.
	Idempotent bool
	// Keyed, when set, says which messages are idempotent in the sense of
	// Idempotent while the others are not (a consumer of several subjects
	// whose effects are keyed for some subjects only): the consumer writes
	// no inbox entry for a message it reports true for, and that message's
	// handler claims it (Claim) when its effect is not keyed after all; the
	// other messages keep their entries, written by the consumer as for any
	// consumer. Idempotent set makes every message keyed.
	Keyed func(msg jetstream.Msg) bool

	trouble *loop.Trouble
	// forgetKick wakes Forget's purge after acknowledgements (nil when the
	// consumer does not Run).
	forgetKick chan struct{}
}

// DefaultForgetEvery is how often at most a Forget consumer purges what it
// handled.
const DefaultForgetEvery = 200 * time.Millisecond

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
	c.trouble = &loop.Trouble{Log: c.Log, What: "consumer " + c.Durable}
	if c.Forget {
		c.forgetKick = make(chan struct{}, 1)
		c.forgetKick <- struct{}{} // what was handled before a restart
	}
	for failures := 0; ctx.Err() == nil; {
		cons, err := c.create(ctx, cfg)
		if err != nil {
			return nil // only when ctx ended
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(max(pullBatch, c.Batch) * workers))
		if err != nil {
			failures = c.trouble.Fail(ctx, fmt.Errorf("pull: %w", err))
			if !sleep(ctx, loop.Backoff(200*time.Millisecond, 5*time.Second, failures)) {
				return nil
			}
			continue
		}
		failures = 0
		c.pull(ctx, cons, it, workers)
	}
	return nil
}

// pullBatch is how many messages one worker keeps buffered.
const pullBatch = 64

// checkEvery is how often a running consumer asks the server whether its
// durable still exists: a server restarted with an empty store (a replaced
// node or volume) lost it, and a pull on a durable that is gone waits for
// ever without an error.
const checkEvery = 5 * time.Second

// pull hands the iterator's messages to workers until the iterator closes:
// when ctx ends, it is drained, so the messages already buffered are
// handled; when the durable is found gone, it is stopped, and Run creates
// the durable again; when the server's heartbeats stop, it is drained and
// Run pulls anew.
func (c *Consumer) pull(ctx context.Context, cons jetstream.Consumer, it jetstream.MessagesContext, workers int) {
	stop := context.AfterFunc(ctx, it.Drain)
	defer stop()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		t := time.NewTicker(checkEvery)
		defer t.Stop()
		for {
			select {
			case <-watchCtx.Done():
				return
			case <-t.C:
			}
			ictx, cancel := context.WithTimeout(watchCtx, 5*time.Second)
			_, err := cons.Info(ictx)
			cancel()
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
				c.Log.WarnContext(ctx, "the durable consumer is gone on the server; creating it again", "consumer", c.Durable, "err", err)
				it.Stop()
				return
			}
		}
	}()
	// One reader takes the iterator's messages (its Next holds the
	// subscription's lock while it waits, so a worker holding a batch
	// must not wait on it) and hands them to the workers, which gather
	// their batches from it.
	// With Key, each worker has its own queue and the messages of one key
	// always go to the same one.
	queues := make([]chan jetstream.Msg, 1)
	if c.Key != nil && workers > 1 {
		queues = make([]chan jetstream.Msg, workers)
	}
	for i := range queues {
		queues[i] = make(chan jetstream.Msg, max(0, c.Batch))
	}
	go func() {
		defer func() {
			for _, q := range queues {
				close(q)
			}
		}()
		for {
			msg, err := it.Next()
			if err == nil {
				queues[c.queueOf(msg, len(queues))] <- msg
				continue
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			if ctx.Err() == nil {
				c.trouble.Fail(ctx, fmt.Errorf("pull: %w", err))
			}
			if errors.Is(err, jetstream.ErrNoHeartbeat) {
				// The server stopped answering this pull (a node, or the
				// consumer's leader, went away). The iterator would wait
				// on it; after a leader change in a cluster under load it
				// stayed silent for good with messages pending. Hand out
				// what is buffered, then Run makes the durable's pull anew.
				it.Drain()
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range workers {
		msgs := queues[w%len(queues)]
		wg.Go(func() {
			for {
				batch, ok := c.take(msgs)
				if !ok {
					return
				}
				c.ProcessBatch(ctx, batch)
			}
		})
	}
	if c.Forget {
		forgetCtx, stopForget := context.WithCancel(context.WithoutCancel(ctx))
		forgot := make(chan struct{})
		go func() { defer close(forgot); c.forgetLoop(forgetCtx, cons) }()
		defer func() { stopForget(); <-forgot }()
	}
	wg.Wait()
	it.Stop()
}

// forgetLoop purges what the durable acknowledged (Forget) whenever an
// acknowledgement kicks it, at most every ForgetEvery, until ctx ends (the
// workers are done), and then a last time.
func (c *Consumer) forgetLoop(ctx context.Context, cons jetstream.Consumer) {
	every := c.ForgetEvery
	if every <= 0 {
		every = DefaultForgetEvery
	}
	var (
		floor uint64
		str   jetstream.Stream // read once, at the first purge
	)
	purge := func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		// The acknowledgements sent so far reach the server first.
		err := c.JS.Conn().FlushWithContext(ctx)
		if err == nil {
			floor, err = c.forget(ctx, cons, &str, floor)
		}
		if err != nil && ctx.Err() == nil {
			c.Log.WarnContext(ctx, "handled messages not purged from their stream; the next round or the stream's limits will", "consumer", c.Durable, "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			purge(context.Background())
			return
		case <-c.forgetKick:
		}
		purge(ctx)
		sleep(ctx, every) // what is acknowledged meanwhile goes in the next purge
	}
}

// queueOf is the worker queue of msg among n: by its Key's hash.
func (c *Consumer) queueOf(msg jetstream.Msg, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(c.Key(msg)))
	return int(h.Sum32() % uint32(n))
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
// is slow or away, so that a busy NATS does not stop the service; when the
// stream is missing it asks Provision to create the streams again. It
// fails only when ctx ends.
func (c *Consumer) create(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	if c.trouble == nil {
		c.trouble = &loop.Trouble{Log: c.Log, What: "consumer " + c.Durable}
	}
	for failures := 0; ; {
		cons, err := c.JS.CreateOrUpdateConsumer(ctx, c.Stream, cfg)
		if err == nil {
			c.trouble.OK(ctx)
			return cons, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("inbox: consumer %s: %w", c.Durable, err)
		}
		failures = c.trouble.Fail(ctx, fmt.Errorf("create the durable: %w", err))
		if errors.Is(err, jetstream.ErrStreamNotFound) && c.Provision != nil {
			if perr := c.Provision(ctx); perr != nil && ctx.Err() == nil {
				c.Log.DebugContext(ctx, "provisioning the streams failed", "consumer", c.Durable, "err", perr)
			}
		}
		if !sleep(ctx, loop.Backoff(200*time.Millisecond, 5*time.Second, failures)) {
			return nil, fmt.Errorf("inbox: consumer %s: %w", c.Durable, ctx.Err())
		}
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
// retried. It keeps the message while it retries (the stream's order holds):
//   - a failure of the moment (Transient, the database away or busy, or the
//     dependency watcher saying Postgres is down) is retried with a capped
//     exponential backoff without limit, and never dead-lettered;
//   - input that breaks a rule (*invalid.Error) is dead-lettered at once;
//   - any other failure while the database is up (a handler bug, a poison
//     message) is counted in inbox_failures and retried, and dead-lettered
//     after MaxDeliver failures.
//
// A panic in the handler is recovered, logged with its stack and counted as
// a failure. When ctx ends while it waits to retry, the message is handed
// back (Nak) for another replica or the next start.
func (c *Consumer) Process(ctx context.Context, msg jetstream.Msg) {
	work := context.WithoutCancel(ctx) // what runs finishes; only waits stop at shutdown
	work = stream.ExtractTrace(work, msg.Headers())
	work, span := otel.Tracer("github.com/huifang/huifang/pkg/inbox").Start(work, "consume "+msg.Subject(),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", msg.Subject())))
	defer span.End()
	id := c.eventID(msg)
	work = context.WithValue(work, eventIDKey{}, id)
	maxFailures := c.MaxDeliver
	if maxFailures <= 0 {
		maxFailures = 5
	}
	base := c.Backoff
	if base <= 0 {
		base = 500 * time.Millisecond
	}

	var bad *invalid.Error
	for attempt := 1; ; attempt++ {
		hctx, after := withAfterCommit(work)
		hctx, writes := outbox.Track(hctx)
		hctx, gath := withGather(hctx)
		err := c.inTx(work, id, c.keyed(msg), func(tx pgx.Tx) error {
			if err := c.handle(hctx, tx, msg); err != nil {
				return err
			}
			return flushGathered(hctx, tx, []*gathered{gath})
		})
		if err == nil {
			c.ack(work, msg)
			after.run()
			if writes.Wrote() {
				c.notify()
			}
			return
		}
		if errors.Is(err, errDuplicate) {
			c.Log.DebugContext(work, "duplicate event ignored", "consumer", c.Durable, "event_id", id)
			c.ack(work, msg)
			return
		}
		var isBad bool
		if bad, isBad = invalid.As(err); isBad {
			break
		}
		var pause time.Duration
		if c.transient(err) {
			pause = loop.Backoff(base, 30*time.Second, attempt)
			level := slog.LevelDebug
			if attempt == 1 {
				level = slog.LevelWarn
			}
			c.Log.Log(work, level, "handler failed for the moment (a dependency away, a lease lost); keeping the message and retrying", "consumer", c.Durable, "event_id", id, "attempt", attempt, "in", pause, "err", err)
		} else {
			failures, cerr := c.countFailure(work, id, err)
			if cerr != nil && !postgres.IsTransient(cerr) && !(c.DatabaseUp != nil && !c.DatabaseUp()) {
				// The database is up but will not count: count here.
				c.Log.WarnContext(work, "counting the failure failed; counting the tries of this delivery", "consumer", c.Durable, "event_id", id, "err", cerr)
				failures, cerr = attempt, nil
			}
			if cerr != nil { // the database went away meanwhile
				pause = loop.Backoff(base, 30*time.Second, attempt)
			} else {
				if failures >= maxFailures {
					bad = invalid.New("", fmt.Sprintf("gave up after %d failures while the database was up: %v", failures, err))
					break
				}
				pause = loop.Backoff(base, 10*time.Second, failures)
				c.Log.WarnContext(work, "handler failed, will retry", "consumer", c.Durable, "event_id", id, "failures", failures, "err", err)
			}
		}
		if !c.hold(ctx, msg, pause) {
			_ = msg.Nak()
			return
		}
	}
	for attempt := 1; ; attempt++ {
		dlErr := c.deadLetter(work, msg, id, bad)
		if dlErr == nil {
			break
		}
		c.Log.WarnContext(work, "dead-lettering failed, will retry", "consumer", c.Durable, "event_id", id, "err", dlErr)
		if !c.hold(ctx, msg, loop.Backoff(base, 30*time.Second, attempt)) {
			_ = msg.Nak()
			return
		}
	}
	c.Log.WarnContext(work, "message dead-lettered", "consumer", c.Durable, "event_id", id, "reason", bad.Error())
	c.ack(work, msg)
	c.notify()
}

// transient tells whether a handler's failure is one of the moment.
func (c *Consumer) transient(err error) bool {
	return IsTransient(err) || postgres.IsTransient(err) || errors.Is(err, context.DeadlineExceeded) ||
		(c.DatabaseUp != nil && !c.DatabaseUp())
}

// hold keeps msg (telling the server the work is in progress, so that its
// ack wait does not run out) for d, or until ctx ends: false then.
func (c *Consumer) hold(ctx context.Context, msg jetstream.Msg, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		_ = msg.InProgress()
		left := time.Until(deadline)
		if left <= 0 {
			return true
		}
		if !sleep(ctx, min(left, 10*time.Second)) {
			return false
		}
	}
}

func (c *Consumer) notify() {
	if c.Relay != nil {
		c.Relay.Notify()
	}
}

// countFailure records one more failure of the event while the database
// is up and returns how many there were (across redeliveries, replicas and
// restarts).
func (c *Consumer) countFailure(ctx context.Context, id string, cause error) (int, error) {
	var n int
	err := c.Pool.QueryRow(ctx, `INSERT INTO inbox_failures (consumer, event_id, failures, last_error) VALUES ($1, $2, 1, $3)
ON CONFLICT (consumer, event_id) DO UPDATE SET failures = inbox_failures.failures + 1, last_error = EXCLUDED.last_error, updated_at = now()
RETURNING failures`, c.Durable, id, text(cause.Error(), 2000)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("inbox: count failure: %w", err)
	}
	return n, nil
}

// text makes an error's words safe to store and to send: valid UTF-8,
// no NUL byte (Postgres refuses both in text; an error may quote the bad
// input it is about), at most n bytes.
func text(s string, n int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", `\x00`)
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
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
	if c.keyed(msg) {
		ctx = context.WithValue(ctx, claimKey{}, c.Durable)
	}
	return c.Handle(ctx, tx, msg)
}

// keyed tells whether msg keeps no inbox entry of the consumer's own
// (Idempotent, Keyed).
func (c *Consumer) keyed(msg jetstream.Msg) bool {
	return c.Idempotent || (c.Keyed != nil && c.Keyed(msg))
}

// claimKey is the context key under which a handler of an Idempotent
// consumer finds its durable name (Claim).
type claimKey struct{}

// Claim writes, within tx, the inbox entry of the message the handler of
// an Idempotent consumer is applying, and reports whether it is the
// first: false when the message was applied before (its redelivery), or is
// being applied in another transaction that then commits (Claim waits for
// it), and the handler must change nothing. Such a consumer writes no
// inbox entries of its own: its handler claims the messages whose effect
// is not keyed by the event (an erasure's redaction and audit entry)
// before it applies them, and the others keep no entry. Under a consumer
// that is not Idempotent (its entry is written already), for a message it
// does not report Keyed, or outside a handler, Claim writes nothing and
// reports true.
func Claim(ctx context.Context, tx pgx.Tx) (bool, error) {
	durable, _ := ctx.Value(claimKey{}).(string)
	id := EventIDFrom(ctx)
	if durable == "" || id == "" {
		return true, nil
	}
	tag, err := tx.Exec(ctx, `INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, durable, id)
	if err != nil {
		return false, fmt.Errorf("inbox: claim %s: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Displace writes, within tx, the inbox entry of the event id, another
// message of the consumer whose handler of ctx applies a keyed message:
// one whose effect the message being applied takes the place of while
// nothing kept would tell it was applied (of two assignments at the same
// time, the later heard replaces the earlier, whose own id the row no
// longer keeps), so that its redelivery, which the handler claims (Claim),
// is found applied. Where Claim writes nothing, Displace writes nothing.
func Displace(ctx context.Context, tx pgx.Tx, id string) error {
	durable, _ := ctx.Value(claimKey{}).(string)
	if durable == "" || id == "" {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, durable, id); err != nil {
		return fmt.Errorf("inbox: enter displaced %s: %w", id, err)
	}
	return nil
}

func (c *Consumer) ack(ctx context.Context, msg jetstream.Msg) {
	if err := msg.DoubleAck(ctx); err != nil {
		c.Log.WarnContext(ctx, "ack failed; the message will come again and be ignored", "consumer", c.Durable, "err", err)
		return
	}
	if c.Forget {
		c.kickForget()
	}
}

// forget purges the messages of the consumer's subjects below the durable's
// acknowledgement floor from its stream (Forget), unless the floor is not
// past floor (purged before), and returns the floor. *str is the stream,
// looked up when nil.
func (c *Consumer) forget(ctx context.Context, cons jetstream.Consumer, str *jetstream.Stream, floor uint64) (uint64, error) {
	info, err := cons.Info(ctx)
	if err != nil {
		return floor, fmt.Errorf("durable's acknowledgement floor: %w", err)
	}
	next := info.AckFloor.Stream
	if next <= floor {
		return floor, nil
	}
	if *str == nil {
		if *str, err = c.JS.Stream(ctx, info.Stream); err != nil {
			return floor, fmt.Errorf("stream %s: %w", info.Stream, err)
		}
	}
	for _, subject := range c.Subjects {
		// Every message of subject before next+1 is acknowledged.
		if err := (*str).Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(next+1)); err != nil {
			return floor, fmt.Errorf("purge %s before %d: %w", subject, next+1, err)
		}
	}
	return next, nil
}

// kickForget wakes Forget's purge (the acknowledgement of a message is on
// its way).
func (c *Consumer) kickForget() {
	if c.forgetKick == nil {
		return
	}
	select {
	case c.forgetKick <- struct{}{}:
	default:
	}
}

// inTx runs fn in a transaction that first claims id in the inbox, unless
// the message is keyed (it keeps no entry).
func (c *Consumer) inTx(ctx context.Context, id string, keyed bool, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, c.Pool, func(tx pgx.Tx) error {
		if c.Fence != nil {
			if err := c.Fence(ctx, tx); err != nil {
				return err
			}
		}
		if !keyed {
			tag, err := tx.Exec(ctx, `INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, c.Durable, id)
			if err != nil {
				return fmt.Errorf("inbox: claim %s: %w", id, err)
			}
			if tag.RowsAffected() == 0 {
				return errDuplicate
			}
		}
		// The handler's statements whose answers it does not read (outbox
		// rows, advisory locks) ride along with the next that it does.
		p := postgres.NewPipeline(tx)
		if err := fn(p); err != nil {
			return err
		}
		return p.Flush(ctx)
	})
}

// deadLetter records the refused message in rejected_events and, through the
// outbox, on huifang.deadletter.<service>, in one transaction. It writes no
// inbox row, so the same event published again (after a fix) is handled
// anew; a redelivery of a message already dead-lettered changes nothing (the
// rejected row is looked up under a lock on the event's key).
func (c *Consumer) deadLetter(ctx context.Context, msg jetstream.Msg, id string, bad *invalid.Error) error {
	tenantID := tenant.Default
	if c.Tenant != nil {
		if t := c.Tenant(msg); t != "" {
			tenantID = t
		}
	}
	// A delivery is one stored message: its redeliveries share it, a new
	// message with the same event id (a fixed resend) does not.
	delivery := ""
	if md, err := msg.Metadata(); err == nil {
		delivery = fmt.Sprintf("%s:%d", md.Stream, md.Sequence.Stream)
	}
	return pgx.BeginFunc(ctx, c.Pool, func(tx pgx.Tx) error {
		if c.Fence != nil {
			if err := c.Fence(ctx, tx); err != nil {
				return err
			}
		}
		if delivery != "" {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "huifang.deadletter/"+delivery); err != nil {
				return fmt.Errorf("inbox: lock dead letter: %w", err)
			}
			var done bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rejected_events WHERE delivery = $1 AND event_id = $2)`, delivery, id).Scan(&done); err != nil {
				return fmt.Errorf("inbox: look up dead letter: %w", err)
			}
			if done {
				return nil
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM inbox_failures WHERE consumer = $1 AND event_id = $2`, c.Durable, id); err != nil {
			return fmt.Errorf("inbox: clear failures: %w", err)
		}
		_, err := Reject(ctx, tx, Rejection{
			Service:     c.Service,
			Tenant:      tenantID,
			Source:      msg.Subject(),
			EventID:     id,
			ContentType: msg.Headers().Get(stream.HeaderContentType),
			Payload:     msg.Data(),
			Err:         bad,
			Seal:        c.Seal,
			Delivery:    delivery,
		})
		return err
	})
}

// MaxDeadLetterPayload is the largest payload a dead letter carries; a
// larger one is kept only in rejected_events and the dead letter names its
// row (Huifang-Payload-Omitted), so that a refused input near NATS's
// message limit cannot make a dead letter NATS refuses.
const MaxDeadLetterPayload = 256 << 10

// maxReasonHeader bounds the reason carried in a dead letter's header.
const maxReasonHeader = 4 << 10

// Rejection is an input a service refused.
type Rejection struct {
	Service     string
	Tenant      string
	Source      string
	EventID     string
	ContentType string
	Payload     []byte
	Err         *invalid.Error
	// Delivery names the stored message that was refused ("<stream>:<sequence>"),
	// so that its redeliveries are recorded once; empty for inputs from an API.
	Delivery string
	// Seal, when set, transforms Payload for the rejected_events row
	// (encryption at rest: the payload may hold personal data), and the
	// dead letter then carries no payload, only the row's id
	// (Huifang-Payload-Omitted): a refused input's contacts are nowhere in
	// clear, and an erasure or the retention of rejected_events removes them.
	Seal Sealer
}

// Reject stores r in rejected_events and puts it on the service's dead-letter
// subject through the outbox, within tx: with the payload, unless it is
// sealed (Seal) or too large (MaxDeadLetterPayload), when the dead letter
// names the row instead. It returns the rejected row's id.
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
	if _, err := tx.Exec(ctx, `INSERT INTO rejected_events (id, tenant_id, source, event_id, field, reason, content_type, payload, delivery)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULLIF($9, ''))`, rowID, r.Tenant, r.Source, text(r.EventID, 1000), text(field, 1000), text(r.Err.Error(), 8000),
		text(r.ContentType, 200), stored, r.Delivery); err != nil {
		return "", fmt.Errorf("inbox: record rejection: %w", err)
	}
	h := nats.Header{}
	h.Set(stream.HeaderReason, text(r.Err.Error(), maxReasonHeader))
	h.Set(stream.HeaderField, text(field, 1000))
	h.Set(stream.HeaderOrigSubject, r.Source)
	h.Set(stream.HeaderService, r.Service)
	h.Set(stream.HeaderRejectedID, rowID)
	if r.ContentType != "" {
		h.Set(stream.HeaderContentType, r.ContentType)
	}
	body := r.Payload
	switch {
	case r.Seal != nil:
		h.Set(stream.HeaderPayloadOmitted, fmt.Sprintf("%d bytes, sealed in %s's rejected_events row %s (it may hold personal data)", len(body), r.Service, rowID))
		body = []byte{}
	case len(body) > MaxDeadLetterPayload:
		// Too large to carry with headers under NATS's limit: the dead
		// letter names the rejected row that keeps it.
		h.Set(stream.HeaderPayloadOmitted, fmt.Sprintf("%d bytes, kept in %s's rejected_events row %s", len(body), r.Service, rowID))
		body = []byte{}
	}
	if err := outbox.AddRaw(ctx, tx, rowID, stream.DeadLetterSubject(r.Service), body, h); err != nil {
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

// Purge deletes up to limit inbox ids handled before cutoff, and failure
// counts as old, and says how many rows it deleted. The retention
// (INBOX_RETENTION) must outlast any redelivery: a message whose ack was lost comes back at
// the latest when NATS returns from an outage, and its id must still be
// known then.
func Purge(ctx context.Context, db postgres.Querier, cutoff time.Time, limit int) (int, error) {
	n, err := postgres.DeleteBefore(ctx, db, "inbox", "handled_at", cutoff, limit)
	if err != nil {
		return 0, err
	}
	tag, err := db.Exec(ctx, `DELETE FROM inbox_failures WHERE updated_at < $1`, cutoff)
	if err != nil {
		return n, fmt.Errorf("inbox: purge failures: %w", err)
	}
	return n + int(tag.RowsAffected()), nil
}

// PurgeRejected deletes at most limit refused inputs received before
// cutoff (REJECTED_RETENTION): they may hold personal data, sealed, and are
// kept only for an admin to see and replay.
func PurgeRejected(ctx context.Context, db postgres.Querier, cutoff time.Time, limit int) (int, error) {
	return postgres.DeleteBefore(ctx, db, "rejected_events", "received_at", cutoff, limit)
}
