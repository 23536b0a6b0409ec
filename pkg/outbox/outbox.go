// Package outbox writes events in the same transaction as the state they
// describe and relays them to JetStream afterwards, so that no event is
// published that the database did not commit and none is lost when a process
// dies between the commit and the publish.
//
// Marking a row published is an update in place (HOT): no index reads
// published_at, so the mark writes no index entry and its row stays on its
// page (migration 005). The relay finds the unpublished rows through two
// floors kept in outbox_relay instead: every row whose xid (the
// transaction that wrote it, or that last made it unpublished again) is
// below xid_floor and whose seq is not above seq_floor is published or
// quarantined. A round that read, in one statement, every unpublished row
// not on its way (from the oldest; or behind the cursor, seq_floor then
// being the cursor) raises xid_floor, once that round and all before it
// are marked, to the oldest transaction still running when it read
// (pg_snapshot_xmin): every transaction below it had ended, so its rows
// were visible to that read, and a transaction still open, which may have
// taken its seq before rows already read and commit after them, is never
// below it. A row made unpublished again takes that transaction as its xid
// (Restreamed sets it, a trigger does for any other statement), so it is
// above the floor until published again. The unpublished rows are then a
// few entries of the index on xid and of the primary key.
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
	"math"
	"sync"
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
	// woken is set by Notify: a commit wrote rows, so the next look needs
	// no probe and a draining relay reads once more.
	woken atomic.Bool
	// behind is set by Notify too: a commit wrote rows that may lie behind
	// a draining relay's cursor (a transaction that took its rows' numbers
	// before others and committed after them).
	behind atomic.Bool

	// Batch is how many rows one round reads.
	Batch int
	// InFlight is how many rounds may be on their way at once: while a
	// round's batches wait for their acknowledgements, the next rounds are
	// read and sent on, each stream's batch only after the stream's
	// previous one was acknowledged (OUTBOX_IN_FLIGHT).
	InFlight int
	// Interval is how often the relay looks for rows when nobody woke it
	// (rows another process wrote, a wake-up missed): one read-only
	// statement over the unpublished rows' index, nothing more when there
	// are none (OUTBOX_POLL_INTERVAL).
	Interval time.Duration
	// Retain is how long published rows are kept (OUTBOX_RETENTION): for
	// inspection, and to publish again to a stream created anew; the
	// service's retention deletes them after (Purge).
	Retain time.Duration
	// AckTimeout bounds the wait for JetStream's acknowledgement of one
	// batch: a batch whose ack does not come stops the relay's work, which
	// gives its lock back and is tried again (the rows are kept).
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
		InFlight:   4,
		Interval:   time.Second,
		Retain:     24 * time.Hour,
		AckTimeout: 10 * time.Second,
	}
}

// Notify wakes the relay after a commit that wrote to the outbox, so events
// leave at once instead of at the next look.
func (r *Relay) Notify() {
	r.woken.Store(true)
	r.behind.Store(true)
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run relays until ctx ends. Woken (Notify), it publishes until nothing
// is left (Drain); otherwise every Interval it first asks, in one
// read-only statement, whether any row waits, so an idle service runs no
// transaction and takes no lock. A failing drain backs off (package loop).
// Published rows are purged after Retain by the service's retention (Purge).
func (r *Relay) Run(ctx context.Context) error {
	l := &loop.Loop{Name: "outbox-relay", Every: r.Interval, Wake: r.wake, Log: r.log, Round: r.look}
	return l.Run(ctx)
}

// look drains the outbox when woken, or when a row waits.
func (r *Relay) look(ctx context.Context) (int, error) {
	if !r.woken.Swap(false) {
		var waiting bool
		if err := r.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM outbox
WHERE (xid >= outbox_xid_floor() OR seq > outbox_seq_floor()) AND published_at IS NULL AND quarantined_at IS NULL)`).Scan(&waiting); err != nil {
			return 0, fmt.Errorf("outbox: relay: look: %w", err)
		}
		if !waiting {
			return 0, nil
		}
	}
	return r.Drain(ctx)
}

type outboxRow struct {
	seq     int64
	id      string
	subject string
	payload []byte
	headers []byte
}

// RunOnce publishes one round (up to Batch rows) in commit order and
// returns how many rows it published or quarantined. A row that NATS
// refuses for good (larger than the server takes, an invalid subject) is
// quarantined with the reason, logged and counted
// (huifang_outbox_quarantined), and the rows behind it go on. A row that
// fails for the moment (no acknowledgement within AckTimeout, no stream,
// NATS away) stays for the next round, and so do the rows of its stream
// behind it; the error makes the loop back off.
func (r *Relay) RunOnce(ctx context.Context) (int, error) { return r.relay(ctx, 1) }

// Drain publishes rounds as RunOnce does until none is left, keeping up
// to InFlight rounds on their way, and returns how many rows it published
// or quarantined. It stops at the first failure of the moment, once what
// was on its way came back.
func (r *Relay) Drain(ctx context.Context) (int, error) { return r.relay(ctx, 0) }

// relay takes the outbox's lock for its session (another relay holding
// it: nothing to do) and publishes up to rounds rounds, all when 0.
func (r *Relay) relay(ctx context.Context, rounds int) (int, error) {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("outbox: relay: %w", err)
	}
	key := "huifang.outbox." + r.schema
	var (
		locked bool
		f      floors
	)
	// The floors are read with the lock: only the lock's holder raises
	// them, and floors read a moment before the last holder raised them
	// are lower, which finds the same rows. The session, while it holds
	// the lock, plans no sequential scan where an index serves: on an
	// outbox not analyzed since it was empty (a fresh schema, until
	// autovacuum comes) the planner cannot tell how few rows are above
	// the floors and would read the whole table for every round (no
	// partial index of the unpublished rows decides for it any more).
	// Nor does it compile a plan (JIT), which the cost of a sequential
	// scan left where no index serves would set off.
	if err := conn.QueryRow(ctx, `SELECT locked, CASE WHEN locked THEN set_config('enable_seqscan', 'off', false) || set_config('jit', 'off', false) END,
  xid_floor, seq_floor
FROM (SELECT pg_try_advisory_lock(hashtext($1)) AS locked) l, outbox_relay`, key).Scan(&locked, nil, &f.xid, &f.seq); err != nil {
		conn.Release()
		return 0, fmt.Errorf("outbox: relay: lock: %w", err)
	}
	if !locked {
		conn.Release()
		return 0, nil
	}
	defer func() {
		// The lock belongs to the session: a connection that cannot give
		// it back is closed, which does.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock(hashtext($1)), set_config('enable_seqscan', NULL, false), set_config('jit', NULL, false)`, key); err != nil {
			_ = conn.Conn().Close(uctx)
		}
		conn.Release()
	}()
	n, err := r.pipeline(ctx, conn, rounds, f)
	if err != nil {
		return n, fmt.Errorf("outbox: relay: %w", err)
	}
	return n, nil
}

// rescanEvery is how long a drain reads on past the rows it has on their
// way before it lets them come back and reads from the oldest unpublished
// row again: a row of a transaction that committed late, behind rows
// already read, and that no commit's wake-up found (behindEvery), waits no
// longer than that.
const rescanEvery = time.Second

// behindEvery is how often at most a draining relay that was woken reads
// the unpublished rows behind its cursor that are not on their way: a row
// of a transaction that committed late waits about that long, not
// rescanEvery.
const behindEvery = 20 * time.Millisecond

// sent is a batch of one stream's rows handed to its publisher, and its round.
type sent struct {
	round int
	rows  []outboxRow
}

// outcome is what became of a batch: rows stored, rows refused for good
// (with the reason), rows not tried (a batch of the stream before failed),
// and the failure of the moment, if any.
type outcome struct {
	round       int
	published   []int64
	quarantined map[int64]string
	skipped     []int64
	err         error
}

// floors are the relay's floors (outbox_relay): every row whose xid is
// below xid and whose seq is not above seq is published or quarantined.
type floors struct {
	xid uint64
	seq int64
}

// noSeqFloor is the seq floor of floors raised by a read from the oldest
// row: every row, whatever its seq, is found by its xid.
const noSeqFloor = math.MaxInt64

// higher tells whether g finds fewer rows than f for certain: the
// transactions' floor raised, or the same with a higher seq floor.
func (g floors) higher(f floors) bool {
	return g.xid > f.xid || g.xid == f.xid && g.seq > f.seq
}

// candidate is what the floors may rise to once round and every round
// before it are marked: its read found every unpublished row not on its
// way (read counts the rows read up to it, inclusive).
type candidate struct {
	round  int
	floors floors
	read   int
}

// pipeline reads rounds on conn, the locked session, and hands each
// round's rows of a stream to that stream's publisher, which publishes
// its batches one after the other, each once the one before was
// acknowledged: the order of a stream holds while the batches of several
// streams and rounds are on their way. Rows are marked published, in one
// statement for whatever came back together, only once acknowledged;
// the same statement raises the floors (f) when the marks complete a
// round that read every unpublished row not on its way.
func (r *Relay) pipeline(ctx context.Context, conn *pgxpool.Conn, rounds int, f floors) (int, error) {
	var (
		depth     = max(r.InFlight, 1)
		results   = make(chan outcome, 4*depth)
		streams   = map[string]chan sent{}
		wg        sync.WaitGroup
		inFlight  = map[int64]struct{}{} // rows handed out and not yet marked
		open      = map[int]int{}        // round → its batches not back
		cursor    int64                  // the last row read; 0: read from the oldest
		rescanAt  time.Time
		behindAt  time.Time // when the rows behind the cursor were last read
		reads     int
		exhausted bool // the last read found fewer rows than a round
		failed    error
		total     int
		cands     []candidate // in the order of their rounds
		read      int         // rows read
		covered   int         // rows read by the round that raised the floors last, and before
		lastRead  bool        // the read that lets the floors catch up was made
	)
	defer func() {
		for _, ch := range streams {
			close(ch)
		}
		wg.Wait()
	}()
	// hand gives the rows of the round just read to their streams' publishers.
	hand := func(batch []outboxRow) {
		for _, part := range byStream(batch) {
			name := stream.Of(part[0].subject)
			ch, ok := streams[name]
			if !ok {
				ch = make(chan sent, depth)
				streams[name] = ch
				wg.Add(1)
				go r.publisher(ctx, ch, results, &wg)
			}
			for _, x := range part {
				inFlight[x.seq] = struct{}{}
			}
			open[reads]++
			ch <- sent{round: reads, rows: part}
		}
	}
	// ready is the highest floors of the candidates whose round and the
	// rounds before are all marked (nil: none), and drops those.
	ready := func() *candidate {
		var best *candidate
		for len(cands) > 0 {
			c := cands[0]
			for round := range open {
				if round <= c.round {
					return best
				}
			}
			cands = cands[1:]
			if c.floors.higher(f) && (best == nil || c.floors.higher(best.floors)) {
				best = &c
			}
		}
		return best
	}
	for {
		if len(inFlight) == 0 {
			cursor, rescanAt = 0, time.Now().Add(rescanEvery)
		}
		if exhausted && r.woken.Swap(false) {
			exhausted = false // a commit wrote rows since
		}
		if failed == nil && cursor > 0 && (rounds == 0 || reads < rounds) && len(open) < depth &&
			time.Since(behindAt) >= behindEvery && r.behind.Swap(false) {
			// A commit since the last look may have left rows behind the
			// cursor: read those not on their way, as a round of their own.
			behindAt = time.Now()
			batch, xmin, err := r.readBehind(ctx, conn, f, cursor, inFlight)
			reads++
			if err != nil {
				failed = err
				continue
			}
			read += len(batch)
			if len(batch) < r.Batch {
				// Every unpublished row up to the cursor is on its way or
				// in this round (if any); past the cursor they may be any.
				// During a backlog this is what raises xid_floor past the
				// rows relayed, so that these reads stay small.
				cands = append(cands, candidate{round: reads, floors: floors{xid: xmin, seq: cursor}, read: read})
			}
			if len(batch) > 0 {
				hand(batch)
				continue
			}
		}
		if failed == nil && !exhausted && (rounds == 0 || reads < rounds) && len(open) < depth &&
			(cursor == 0 || time.Now().Before(rescanAt)) {
			batch, xmin, err := r.read(ctx, conn, f, cursor)
			reads++
			if err != nil {
				failed = err
				continue
			}
			read += len(batch)
			exhausted = len(batch) < r.Batch
			if cursor == 0 && exhausted && len(batch) > 0 {
				// Nothing was on its way: this round holds every
				// unpublished row.
				cands = append(cands, candidate{round: reads, floors: floors{xid: xmin, seq: noSeqFloor}, read: read})
			}
			if len(batch) > 0 {
				cursor = batch[len(batch)-1].seq
				hand(batch)
				continue // read ahead while these are on their way
			}
		}
		if len(inFlight) == 0 {
			if failed == nil && rounds == 0 && !lastRead && read-covered >= r.Batch && ctx.Err() == nil {
				// A round's worth of rows was read since the floors last
				// rose (a backlog, read past the cursor): one read from
				// the oldest row lets them catch up, so that the looks
				// and reads after this drain find only the rows since.
				lastRead = true
				if err := r.catchUp(ctx, conn, &f); err != nil {
					failed = err
				}
				covered = read
				exhausted = false
				continue
			}
			break
		}
		outs := []outcome{<-results}
	more:
		for {
			select {
			case o := <-results:
				outs = append(outs, o)
			default:
				break more
			}
		}
		var spoilt bool
		for _, o := range outs {
			for _, seqs := range [][]int64{o.published, o.skipped} {
				for _, seq := range seqs {
					delete(inFlight, seq)
				}
			}
			for seq := range o.quarantined {
				delete(inFlight, seq)
			}
			if open[o.round]--; open[o.round] == 0 {
				delete(open, o.round)
			}
			if o.err != nil && failed == nil {
				failed = o.err
			}
			spoilt = spoilt || o.err != nil || len(o.skipped) > 0
		}
		var raise *candidate
		if failed == nil && !spoilt {
			raise = ready()
		} else {
			cands = nil // rows left unpublished below them: they rise no more in this drain
		}
		var to *floors
		if raise != nil {
			to = &raise.floors
		}
		n, err := r.mark(ctx, conn, outs, to)
		total += n
		if err != nil && failed == nil {
			failed = err
		}
		if err == nil && raise != nil {
			f, covered = raise.floors, raise.read
		}
	}
	if failed != nil {
		return total, failed
	}
	return total, nil
}

// catchUp raises the floors (f, also in outbox_relay) when nothing is on
// its way: it notes the oldest transaction still running, then looks
// whether any unpublished row is left; if none is, every transaction below
// it had ended and its rows are published, and the floors rise to it. If
// some are, the drain reads them next, from the oldest, as a round of its
// own (which raises the floors once marked).
func (r *Relay) catchUp(ctx context.Context, conn *pgxpool.Conn, f *floors) error {
	var xmin uint64
	if err := conn.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())`).Scan(&xmin); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	var waiting bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM outbox
WHERE (xid >= $1 OR seq > $2) AND published_at IS NULL AND quarantined_at IS NULL)`, f.xid, f.seq).Scan(&waiting); err != nil {
		return fmt.Errorf("look: %w", err)
	}
	to := floors{xid: xmin, seq: noSeqFloor}
	if waiting || !to.higher(*f) {
		return nil
	}
	if err := r.raise(ctx, conn, to); err != nil {
		return err
	}
	*f = to
	return nil
}

// raiseSQL raises the floors to $1 and $2 (never lowering xid_floor).
const raiseSQL = `UPDATE outbox_relay SET xid_floor = $1, seq_floor = $2 WHERE one AND xid_floor <= $1`

// raise raises the floors to to in a statement of its own.
func (r *Relay) raise(ctx context.Context, conn *pgxpool.Conn, to floors) error {
	if _, err := conn.Exec(ctx, raiseSQL, to.xid, to.seq); err != nil {
		return fmt.Errorf("raise the floors: %w", err)
	}
	return nil
}

// read returns up to Batch unpublished rows after cursor, in commit order,
// and the oldest transaction running when it read (0 when none was read).
func (r *Relay) read(ctx context.Context, conn *pgxpool.Conn, f floors, cursor int64) ([]outboxRow, uint64, error) {
	if cursor == 0 {
		return r.query(ctx, conn, `(xid >= $2 OR seq > $3)`, f.xid, f.seq)
	}
	// Past the cursor the rows are those of the last commits: the
	// primary key finds them.
	return r.query(ctx, conn, `seq > $2`, cursor)
}

// readBehind returns up to Batch unpublished rows up to cursor that are not
// in inFlight (on their way), in commit order: rows of transactions that
// committed after the rows read past them; and the oldest transaction
// running when it read (0 when none was read).
func (r *Relay) readBehind(ctx context.Context, conn *pgxpool.Conn, f floors, cursor int64, inFlight map[int64]struct{}) ([]outboxRow, uint64, error) {
	away := make([]int64, 0, len(inFlight))
	for seq := range inFlight {
		away = append(away, seq)
	}
	// One row at least, which says the oldest transaction running when
	// it read even when there is nothing behind the cursor (the rows,
	// few, are sorted again).
	rows, err := conn.Query(ctx, `SELECT s.xmin, o.seq, o.id, o.subject, o.payload, o.headers
FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) s LEFT JOIN LATERAL (
  SELECT seq, id, subject, payload, headers FROM outbox
  WHERE published_at IS NULL AND quarantined_at IS NULL AND (xid >= $2 OR seq > $3) AND seq <= $4 AND seq <> ALL($5)
  ORDER BY seq LIMIT $1) o ON true
ORDER BY o.seq`, r.Batch, f.xid, f.seq, cursor, away)
	if err != nil {
		return nil, 0, fmt.Errorf("select: %w", err)
	}
	var (
		xmin  uint64
		batch []outboxRow
	)
	for rows.Next() {
		var (
			x           outboxRow
			seq         *int64
			id, subject *string
		)
		if err := rows.Scan(&xmin, &seq, &id, &subject, &x.payload, &x.headers); err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("scan: %w", err)
		}
		if seq != nil { // nil: nothing behind the cursor
			x.seq, x.id, x.subject = *seq, *id, *subject
			batch = append(batch, x)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("select: %w", err)
	}
	return batch, xmin, nil
}

// query returns up to Batch unpublished rows that also meet where (its
// parameters from $2 on), in commit order, and the oldest transaction
// running when it read them (0 when none).
func (r *Relay) query(ctx context.Context, conn *pgxpool.Conn, where string, args ...any) ([]outboxRow, uint64, error) {
	rows, err := conn.Query(ctx, `SELECT seq, id, subject, payload, headers, (SELECT pg_snapshot_xmin(pg_current_snapshot())) FROM outbox
WHERE published_at IS NULL AND quarantined_at IS NULL AND `+where+` ORDER BY seq LIMIT $1`, append([]any{r.Batch}, args...)...)
	if err != nil {
		return nil, 0, fmt.Errorf("select: %w", err)
	}
	var xmin uint64
	batch, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (outboxRow, error) {
		var x outboxRow
		err := row.Scan(&x.seq, &x.id, &x.subject, &x.payload, &x.headers, &xmin)
		return x, err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("scan: %w", err)
	}
	return batch, xmin, nil
}

// mark marks the rows of outs that JetStream stored as published, in one
// statement, and quarantines the ones it refused, and returns how many;
// then it raises the floors to to, unless nil, in the same statement as
// the marks when nothing was quarantined. Rows it cannot mark stay
// unpublished: published again, they are dropped by their ids.
func (r *Relay) mark(ctx context.Context, conn *pgxpool.Conn, outs []outcome, to *floors) (int, error) {
	var published []int64
	quarantined := map[int64]string{}
	for _, o := range outs {
		published = append(published, o.published...)
		maps.Copy(quarantined, o.quarantined)
	}
	if len(published) > 0 {
		if to != nil && len(quarantined) == 0 {
			if _, err := conn.Exec(ctx, `WITH marked AS (UPDATE outbox SET published_at = now() WHERE seq = ANY($3))
`+raiseSQL, to.xid, to.seq, published); err != nil {
				return 0, fmt.Errorf("mark published: %w", err)
			}
			return len(published), nil
		}
		if _, err := conn.Exec(ctx, `UPDATE outbox SET published_at = now() WHERE seq = ANY($1)`, published); err != nil {
			return 0, fmt.Errorf("mark published: %w", err)
		}
	}
	for seq, reason := range quarantined {
		if _, err := conn.Exec(ctx, `UPDATE outbox SET quarantined_at = now(), quarantine_reason = $2 WHERE seq = $1`, seq, reason); err != nil {
			return len(published), fmt.Errorf("quarantine: %w", err)
		}
		r.log.ErrorContext(ctx, "outbox row refused by NATS: quarantined, the rows behind it go on", "seq", seq, "reason", reason)
	}
	if to != nil {
		if err := r.raise(ctx, conn, *to); err != nil {
			return len(published) + len(quarantined), err
		}
	}
	return len(published) + len(quarantined), nil
}

// publisher publishes one stream's batches in the order they come, each
// after the one before came back; after a failure of the moment it tries
// none of the stream's later batches (they wait for the next drain, so
// the stream's order holds).
func (r *Relay) publisher(ctx context.Context, in <-chan sent, out chan<- outcome, wg *sync.WaitGroup) {
	defer wg.Done()
	var failed bool
	for b := range in {
		if failed {
			o := outcome{round: b.round}
			for _, x := range b.rows {
				o.skipped = append(o.skipped, x.seq)
			}
			out <- o
			continue
		}
		o := r.publish(ctx, b.rows)
		o.round = b.round
		failed = o.err != nil
		out <- o
	}
}

// publish publishes rows, which go to one stream, as one atomic batch, or
// one by one when that fails.
func (r *Relay) publish(ctx context.Context, rows []outboxRow) outcome {
	o := outcome{quarantined: map[int64]string{}}
	msgs := make([]*nats.Msg, 0, len(rows))
	send := make([]outboxRow, 0, len(rows))
	for _, x := range rows {
		h := nats.Header{}
		if err := json.Unmarshal(x.headers, &h); err != nil {
			o.quarantined[x.seq] = "unreadable headers: " + err.Error()
			continue
		}
		msg := &nats.Msg{Subject: x.subject, Data: x.payload, Header: h}
		msg.Header.Set(jetstream.MsgIDHeader, x.id)
		msgs, send = append(msgs, msg), append(send, x)
	}
	if len(msgs) == 0 {
		return o
	}
	ackCtx, cancel := context.WithTimeout(ctx, r.AckTimeout)
	defer cancel()
	if r.atomic(ctx, ackCtx, send, msgs) {
		for _, x := range send {
			o.published = append(o.published, x.seq)
		}
		return o
	}
	ok, bad, err := r.publishEach(ctx, ackCtx, send, msgs)
	o.published, o.err = ok, err
	maps.Copy(o.quarantined, bad)
	if err != nil {
		// What was neither stored nor refused waits for the next drain.
		done := map[int64]bool{}
		for _, seq := range ok {
			done[seq] = true
		}
		for seq := range bad {
			done[seq] = true
		}
		for _, x := range send {
			if !done[x.seq] {
				o.skipped = append(o.skipped, x.seq)
			}
		}
	}
	return o
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
		// No flow control: the batch's messages go out without waiting
		// for the first one's acknowledgement (a round trip per batch);
		// the commit's acknowledgement says whether all were stored.
		ack, err := jetstreamext.PublishMsgBatch(ackCtx, r.js, part, jetstreamext.BatchFlowControl{})
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
// (OUTBOX_RETENTION); unpublished and quarantined rows stay. No index
// reads published_at (the mark is an update in place): it reads at most
// limit rows in the order of the primary key, from the oldest and past
// the quarantined ones, and deletes those published before cutoff up to
// the first row not yet published or written and published after cutoff
// (rows are written in about the order of their seq, and published after
// they were written: no row past that one was published before cutoff,
// save a row of a transaction that took its seq before others and
// committed after them, deleted once the rows before it are). A row
// written before cutoff and published after it (published again after its
// stream was created anew) is passed and kept.
func Purge(ctx context.Context, db postgres.Querier, cutoff time.Time, limit int) (int, error) {
	tag, err := db.Exec(ctx, `DELETE FROM outbox WHERE seq = ANY (ARRAY(
SELECT seq FROM (
  SELECT seq, published_at,
    bool_and(published_at IS NOT NULL AND (published_at < $1 OR created_at < $1)) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS walked
  FROM (SELECT seq, published_at, created_at FROM outbox WHERE published_at IS NOT NULL OR quarantined_at IS NULL ORDER BY seq LIMIT $2) oldest
) walk WHERE walked AND published_at < $1))`, cutoff, limit)
	if err != nil {
		return 0, fmt.Errorf("outbox: purge: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// Pending counts the rows not yet published: the outbox backlog
// (quarantined rows are counted by Quarantined).
func Pending(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox
WHERE (xid >= outbox_xid_floor() OR seq > outbox_seq_floor()) AND published_at IS NULL AND quarantined_at IS NULL`).Scan(&n)
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
// The rows take this transaction as their xid, above the relay's floor
// until they are published again.
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
		tag, err := tx.Exec(ctx, `UPDATE outbox SET published_at = NULL, xid = pg_current_xact_id()
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
