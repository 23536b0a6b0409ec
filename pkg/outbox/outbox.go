// Package outbox writes events in the same transaction as the state they
// describe and relays them to JetStream afterwards, so that no event is
// published that the database did not commit and none is lost when a process
// dies between the commit and the publish.
package outbox

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
	"google.golang.org/protobuf/proto"

	"github.com/huifang/huifang/pkg/loop"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/stream"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations creates the outbox table in a service's schema.
func Migrations() postgres.Migrations {
	sub, _ := fs.Sub(migrations, "migrations")
	return postgres.Migrations{Set: "outbox", FS: sub}
}

// NewEventID returns a new event id: a UUIDv7, so ids sort by time.
func NewEventID() string { return uuid.Must(uuid.NewV7()).String() }

// Message is an event to publish.
type Message struct {
	// ID is the event id, sent as Nats-Msg-Id; a new one when empty.
	ID      string
	Subject string
	Payload proto.Message
	// Header holds extra headers; the content type and trace context are added.
	Header nats.Header
}

// writesKey is the context key of a *Writes.
type writesKey struct{}

// Writes counts the rows written into the outbox through a context that
// Track made, so that a transaction that wrote none wakes no relay.
type Writes struct{ n atomic.Int64 }

// Track returns ctx counting the rows Add, AddMany and AddRaw write through
// it, and through the contexts made from it, into w.
func Track(ctx context.Context) (_ context.Context, w *Writes) {
	w = &Writes{}
	return context.WithValue(ctx, writesKey{}, w), w
}

// Wrote tells whether anything was written through the context.
func (w *Writes) Wrote() bool { return w.n.Load() > 0 }

// wrote counts one row written through ctx.
func wrote(ctx context.Context) {
	if w, ok := ctx.Value(writesKey{}).(*Writes); ok {
		w.n.Add(1)
	}
}

// Add writes msg into the outbox within tx and returns its event id. The
// trace context of ctx travels with it.
func Add(ctx context.Context, tx pgx.Tx, msg Message) (string, error) {
	row, err := encode(ctx, msg)
	if err != nil {
		return "", err
	}
	// Nobody reads the insert's answer: in a pipeline it rides along with
	// the next statement that has one.
	if err := postgres.Defer(ctx, tx, `INSERT INTO outbox (id, subject, payload, headers) VALUES ($1, $2, $3, $4)`,
		row.id, row.subject, row.payload, row.headers); err != nil {
		return "", fmt.Errorf("outbox: insert %s: %w", msg.Subject, err)
	}
	wrote(ctx)
	return row.id, nil
}

// AddMany writes msgs into the outbox within tx in one statement, in their
// order (the relay publishes them so), and returns their event ids. The
// trace context of ctx travels with each. It is Add for a batch: one round
// trip however many messages.
func AddMany(ctx context.Context, tx pgx.Tx, msgs []Message) ([]string, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	ids, subjects, headers := make([]string, len(msgs)), make([]string, len(msgs)), make([]string, len(msgs))
	payloads := make([][]byte, len(msgs))
	for i, msg := range msgs {
		row, err := encode(ctx, msg)
		if err != nil {
			return nil, err
		}
		ids[i], subjects[i], payloads[i], headers[i] = row.id, row.subject, row.payload, string(row.headers)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (id, subject, payload, headers)
SELECT id, subject, payload, headers::jsonb FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[])
  WITH ORDINALITY AS m (id, subject, payload, headers, n) ORDER BY n`,
		ids, subjects, payloads, headers); err != nil {
		return nil, fmt.Errorf("outbox: insert %d messages: %w", len(msgs), err)
	}
	wrote(ctx)
	return ids, nil
}

// encode is msg as an outbox row: its id (a new one when it has none), the
// payload marshalled, the headers with the content type and the trace
// context of ctx.
func encode(ctx context.Context, msg Message) (outboxRow, error) {
	if msg.ID == "" {
		msg.ID = NewEventID()
	}
	body, err := proto.Marshal(msg.Payload)
	if err != nil {
		return outboxRow{}, fmt.Errorf("outbox: marshal %s: %w", msg.Subject, err)
	}
	h := nats.Header{}
	for k, vs := range msg.Header {
		h[k] = vs
	}
	if h.Get(stream.HeaderContentType) == "" {
		h.Set(stream.HeaderContentType, stream.ContentTypeProtobuf)
	}
	stream.InjectTrace(ctx, h)
	hj, err := json.Marshal(h)
	if err != nil {
		return outboxRow{}, fmt.Errorf("outbox: headers: %w", err)
	}
	return outboxRow{id: msg.ID, subject: msg.Subject, payload: body, headers: hj}, nil
}

// AddRaw writes an already encoded payload, e.g. a dead letter kept byte for byte.
func AddRaw(ctx context.Context, tx pgx.Tx, id, subject string, payload []byte, h nats.Header) error {
	if id == "" {
		id = NewEventID()
	}
	stream.InjectTrace(ctx, h)
	hj, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("outbox: headers: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (id, subject, payload, headers) VALUES ($1, $2, $3, $4)`,
		id, subject, payload, hj); err != nil {
		return fmt.Errorf("outbox: insert %s: %w", subject, err)
	}
	wrote(ctx)
	return nil
}

// Relay publishes committed outbox rows to JetStream in commit order.
type Relay struct {
	pool   *pgxpool.Pool
	js     jetstream.JetStream
	log    *slog.Logger
	schema string
	wake   chan struct{}

	// Batch is how many rows one round publishes.
	Batch int
	// Interval is how often the relay looks for rows when nobody woke it.
	Interval time.Duration
	// Retain is how long published rows are kept (OUTBOX_RETENTION): for
	// inspection, and to publish again to a stream created anew; the
	// service's retention deletes them after (Purge).
	Retain time.Duration
	// AckTimeout bounds the wait for JetStream's acknowledgements of one
	// round: a round whose acks do not come gives its lock back and is
	// tried again (the published rows are kept).
	AckTimeout time.Duration
	// Provision, when set, creates the streams again; it is called when a
	// publish finds no stream for its subject.
	Provision func(ctx context.Context) error
	// NoAtomic publishes every row on its own instead of a round's rows of
	// a stream as one atomic batch (for a server older than 2.12, or to
	// compare).
	NoAtomic bool
}

// NewRelay returns a relay for the outbox of schema. Only one relay per schema
// works at a time (an advisory lock), so events leave in the order they were
// written even with several replicas.
func NewRelay(pool *pgxpool.Pool, js jetstream.JetStream, log *slog.Logger, schema string) *Relay {
	return &Relay{
		pool: pool, js: js, log: log, schema: schema,
		wake:       make(chan struct{}, 1),
		Batch:      256,
		Interval:   200 * time.Millisecond,
		Retain:     24 * time.Hour,
		AckTimeout: 10 * time.Second,
	}
}

// Notify wakes the relay after a commit that wrote to the outbox, so events
// leave at once instead of at the next tick.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run relays until ctx ends: a round every Interval, at once when
// notified, again at once while rounds are full (package loop). Published
// rows are purged after Retain by the service's retention (Purge).
func (r *Relay) Run(ctx context.Context) error {
	l := &loop.Loop{Name: "outbox-relay", Every: r.Interval, Batch: r.Batch, Wake: r.wake, Log: r.log, Round: r.RunOnce}
	return l.Run(ctx)
}

type outboxRow struct {
	seq     int64
	id      string
	subject string
	payload []byte
	headers []byte
}

// RunOnce publishes one batch in commit order and returns how many rows
// it published or quarantined. A row that NATS refuses for good (larger
// than the server takes, an invalid subject) is quarantined with the
// reason, logged and counted (huifang_outbox_quarantined), and the rows
// behind it go on. A row that fails for the moment (no acknowledgement
// within AckTimeout, no stream, NATS away) stays for the next round, which
// the error makes the loop back off for.
func (r *Relay) RunOnce(ctx context.Context) (int, error) {
	var n int
	var roundErr error
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtext($1))`, "huifang.outbox."+r.schema).Scan(&locked); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if !locked {
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT seq, id, subject, payload, headers FROM outbox
WHERE published_at IS NULL AND quarantined_at IS NULL ORDER BY seq LIMIT $1`, r.Batch)
		if err != nil {
			return fmt.Errorf("select: %w", err)
		}
		batch, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (outboxRow, error) {
			var x outboxRow
			err := row.Scan(&x.seq, &x.id, &x.subject, &x.payload, &x.headers)
			return x, err
		})
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		if len(batch) == 0 {
			return nil
		}
		var (
			published   []int64
			quarantined = map[int64]string{}
		)
		ackCtx, cancel := context.WithTimeout(ctx, r.AckTimeout)
		defer cancel()
		for _, group := range byStream(batch) {
			msgs := make([]*nats.Msg, 0, len(group))
			rows := make([]outboxRow, 0, len(group))
			for _, x := range group {
				h := nats.Header{}
				if err := json.Unmarshal(x.headers, &h); err != nil {
					quarantined[x.seq] = "unreadable headers: " + err.Error()
					continue
				}
				msg := &nats.Msg{Subject: x.subject, Data: x.payload, Header: h}
				msg.Header.Set(jetstream.MsgIDHeader, x.id)
				msgs, rows = append(msgs, msg), append(rows, x)
			}
			if len(msgs) == 0 {
				continue
			}
			if r.atomic(ctx, ackCtx, rows, msgs) {
				for _, x := range rows {
					published = append(published, x.seq)
				}
				continue
			}
			ok, bad, err := r.publishEach(ctx, ackCtx, rows, msgs)
			published = append(published, ok...)
			maps.Copy(quarantined, bad)
			if err != nil {
				roundErr = err
				break // NATS away or stalled: the rest waits for the next round
			}
		}
		if len(published) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE outbox SET published_at = now() WHERE seq = ANY($1)`, published); err != nil {
				return fmt.Errorf("mark published: %w", err)
			}
		}
		for seq, reason := range quarantined {
			if _, err := tx.Exec(ctx, `UPDATE outbox SET quarantined_at = now(), quarantine_reason = $2 WHERE seq = $1`, seq, reason); err != nil {
				return fmt.Errorf("quarantine: %w", err)
			}
			r.log.ErrorContext(ctx, "outbox row refused by NATS: quarantined, the rows behind it go on", "seq", seq, "reason", reason)
		}
		n = len(published) + len(quarantined)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("outbox: relay: %w", err)
	}
	if roundErr != nil {
		return n, fmt.Errorf("outbox: relay: %w", roundErr)
	}
	return n, nil
}

// byStream splits a round's rows by the stream their subject goes to,
// each part in commit order (rows of a subject outside the streams go
// together, published one by one).
func byStream(rows []outboxRow) [][]outboxRow {
	var order []string
	parts := map[string][]outboxRow{}
	for _, x := range rows {
		name := stream.Of(x.subject)
		if _, ok := parts[name]; !ok {
			order = append(order, name)
		}
		parts[name] = append(parts[name], x)
	}
	out := make([][]outboxRow, 0, len(order))
	for _, name := range order {
		out = append(out, parts[name])
	}
	return out
}

// MaxAtomicBatch is the most messages one atomic batch carries (the
// server's limit is 1,000).
const MaxAtomicBatch = 1000

// atomic publishes msgs, which go to one stream, as JetStream atomic
// batches (ADR-50: stored all or none, one acknowledgement, one write to
// disk) and tells whether all were stored. Any refusal (a message seen
// before within the duplicate window, which fails the whole batch; a
// stream or server without atomic publishing; a message NATS refuses)
// and any failure leaves the rows to be published one by one, which
// deduplicates and quarantines message by message.
func (r *Relay) atomic(ctx, ackCtx context.Context, rows []outboxRow, msgs []*nats.Msg) bool {
	if r.NoAtomic || len(msgs) < 2 || stream.Of(rows[0].subject) == "" {
		return false
	}
	for start := 0; start < len(msgs); start += MaxAtomicBatch {
		part := msgs[start:min(start+MaxAtomicBatch, len(msgs))]
		ack, err := jetstreamext.PublishMsgBatch(ackCtx, r.js, part)
		if err == nil && ack.BatchSize != uint64(len(part)) {
			err = fmt.Errorf("the server stored %d of the batch's %d messages", ack.BatchSize, len(part))
		}
		if err != nil {
			r.log.DebugContext(ctx, "atomic batch not stored; publishing its messages one by one", "messages", len(part), "err", err)
			if start > 0 {
				// The parts before are stored: publishing them again is
				// deduplicated by their ids.
				r.log.DebugContext(ctx, "earlier parts of the round were stored", "messages", start)
			}
			return false
		}
	}
	return true
}

// publishEach publishes msgs one by one, asynchronously, and returns the
// rows stored, the rows NATS refuses for good with the reason, and the
// failure of the moment that stopped it, if any.
func (r *Relay) publishEach(ctx, ackCtx context.Context, rows []outboxRow, msgs []*nats.Msg) ([]int64, map[int64]string, error) {
	type sent struct {
		row    outboxRow
		future jetstream.PubAckFuture
	}
	var (
		inFlight    []sent
		published   []int64
		quarantined = map[int64]string{}
		roundErr    error
	)
	for i, msg := range msgs {
		x := rows[i]
		f, err := r.js.PublishMsgAsync(msg)
		if err != nil {
			if refused(err) {
				quarantined[x.seq] = err.Error()
				continue
			}
			roundErr = fmt.Errorf("publish %s: %w", x.id, err)
			break
		}
		inFlight = append(inFlight, sent{x, f})
	}
acks:
	for _, s := range inFlight {
		select {
		case <-s.future.Ok():
			published = append(published, s.row.seq)
		case err := <-s.future.Err():
			switch {
			case refused(err):
				quarantined[s.row.seq] = err.Error()
			case roundErr == nil:
				roundErr = fmt.Errorf("publish %s: %w", s.row.id, err)
				if errors.Is(err, jetstream.ErrNoStreamResponse) && r.Provision != nil {
					if perr := r.Provision(ctx); perr != nil {
						r.log.DebugContext(ctx, "provisioning the streams failed", "err", perr)
					}
				}
			}
		case <-ackCtx.Done():
			if roundErr == nil {
				roundErr = fmt.Errorf("no publish acknowledgement from JetStream within %s", r.AckTimeout)
			}
			break acks
		}
	}
	return published, quarantined, roundErr
}

// refused tells whether NATS refuses a message for good: retrying the same
// bytes cannot succeed.
func refused(err error) bool {
	if errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject) || errors.Is(err, nats.ErrBadHeaderMsg) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamMessageExceedsMaximum, jsErrCodeStreamHeaderExceedsMaximum:
			return true
		}
	}
	return false
}

// jsErrCodeStreamHeaderExceedsMaximum: "header size exceeds maximum allowed" (nats-server JSStreamHeaderExceedsMaximumErr).
const jsErrCodeStreamHeaderExceedsMaximum jetstream.ErrorCode = 10097

// Purge deletes at most limit published rows published before cutoff
// (OUTBOX_RETENTION); unpublished and quarantined rows stay.
func Purge(ctx context.Context, db postgres.Querier, cutoff time.Time, limit int) (int, error) {
	return postgres.DeleteBefore(ctx, db, "outbox", "published_at", cutoff, limit)
}

// Pending counts the rows not yet published: the outbox backlog
// (quarantined rows are counted by Quarantined).
func Pending(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE published_at IS NULL AND quarantined_at IS NULL`).Scan(&n)
	return n, err
}

// Quarantined counts the rows NATS refused for good: each needs an
// operator (docs/operations.md).
func Quarantined(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE quarantined_at IS NOT NULL`).Scan(&n)
	return n, err
}

// Restreamed tells the relay which incarnation of a stream it publishes to
// (the stream's creation time). When the stream was created anew since the
// relay last looked (a NATS server back with an empty store, a stream
// deleted by hand), everything the old one held is gone: the rows the
// relay published on its subjects (subjectPrefix, e.g. "huifang.events.")
// and still keeps (Retain) are marked unpublished, so the relay sends them
// again, in their order; consumers drop those they had handled through
// their inbox. It returns how many rows it queued again (0 the first time
// a stream is seen). Several replicas may call it at once: one queues.
func (r *Relay) Restreamed(ctx context.Context, name, subjectPrefix string, created time.Time) (int64, error) {
	incarnation := created.UTC().Format(time.RFC3339Nano)
	var n int64
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "huifang.outbox.streams."+r.schema); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		var seen string
		err := tx.QueryRow(ctx, `SELECT created FROM outbox_streams WHERE stream = $1`, name).Scan(&seen)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			_, err = tx.Exec(ctx, `INSERT INTO outbox_streams (stream, created) VALUES ($1, $2)`, name, incarnation)
			return err
		case err != nil:
			return err
		case seen == incarnation:
			return nil
		}
		tag, err := tx.Exec(ctx, `UPDATE outbox SET published_at = NULL
WHERE published_at IS NOT NULL AND quarantined_at IS NULL AND starts_with(subject, $1)`, subjectPrefix)
		if err != nil {
			return fmt.Errorf("queue again: %w", err)
		}
		n = tag.RowsAffected()
		_, err = tx.Exec(ctx, `UPDATE outbox_streams SET created = $2, seen_at = now() WHERE stream = $1`, name, incarnation)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("outbox: stream %s: %w", name, err)
	}
	if n > 0 {
		r.log.WarnContext(ctx, "the stream was created anew (what it held is gone): publishing again the events still kept", "stream", name, "events", n, "kept_for", r.Retain)
		r.Notify()
	}
	return n, nil
}
