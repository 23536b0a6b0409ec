package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/analytics/internal/app"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// rebuild makes the rollups again without ever emptying the tables in use:
//
//  1. it refuses a stream that no longer holds the whole history
//     (app.CheckHistory);
//  2. it replays the stream from its first message into shadow tables
//     (app.BeginRebuild, Shadow.Tx: the same ApplyEventTx, the store
//     pointed at the shadow), in batches, while the consumer goes on
//     consuming into the live tables and queries read them;
//  3. once the shadow is within a batch of the stream's end, it stops the
//     consumer, reads the stream's last sequence, replays up to it, and
//     swaps the shadow in with the replay's inbox in one transaction
//     (Shadow.Swap), then lets the consumer go on from where its durable
//     is: the events up to the last sequence are in the new inbox and are
//     acknowledged without effect; those after it are applied.
//
// Any failure drops the shadow and leaves the live tables, the inbox and
// the durable as they were. It returns the last sequence the swapped-in
// tables cover.
func (g *Gate) rebuild(ctx context.Context, t *term, j *rebuildJob) (uint64, error) {
	s, err := g.JS.Stream(ctx, stream.EventsStream)
	if err != nil {
		return 0, fmt.Errorf("consumer: stream %s: %w", stream.EventsStream, err)
	}
	h := history(s.CachedInfo())
	if err := g.App.CheckHistory(ctx, h); err != nil {
		return 0, err
	}
	if err := g.App.RecordStreamOrigin(ctx, h); err != nil { // when the term's start could not
		return 0, err
	}
	sh, err := g.App.BeginRebuild(ctx)
	if err != nil {
		return 0, err
	}
	swapped := false
	defer func() {
		if swapped {
			return
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := sh.Drop(dctx); err != nil {
			g.Log.WarnContext(ctx, "could not drop the shadow tables of a failed rebuild; the next rebuild does", "schema", sh.Schema(), "err", err)
		}
	}()
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: Subjects, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return 0, fmt.Errorf("consumer: replay consumer: %w", err)
	}
	r := &replay{g: g, sh: sh, cons: cons, batch: max(1, g.Batch), target: h.LastSeq, started: time.Now(), logged: time.Now()}
	g.Log.InfoContext(ctx, "rebuilding the rollups into shadow tables; the figures in use stay until the swap",
		"stream", h.Stream, "first_sequence", h.FirstSeq, "last_sequence", h.LastSeq, "schema", sh.Schema())

	// Catch up while the consumer consumes.
	for {
		n, pending, err := r.round(ctx)
		if err != nil {
			return 0, err
		}
		if n == 0 || pending < uint64(r.batch) {
			break
		}
	}
	if err := sh.Analyze(ctx); err != nil {
		return 0, err
	}

	// Stop the consumer, take the rest, swap.
	resume, err := g.pause(ctx, t)
	if err != nil {
		return 0, err
	}
	defer resume()
	paused := time.Now()
	by := j.cutOff()
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("consumer: stream %s: %w", stream.EventsStream, err)
	}
	// Nothing may have been removed meanwhile (an expiry while the replay
	// read the stream's start would have left a gap in it).
	if err := g.App.CheckHistory(ctx, history(info)); err != nil {
		return 0, err
	}
	last := info.State.LastSeq
	r.target = last
	for r.last < last {
		n, _, err := r.round(ctx)
		if err != nil {
			return 0, err
		}
		if n == 0 {
			break // the rest of the stream is on subjects the consumer does not read
		}
	}
	done := app.Rebuilt{By: by, Migration: j.migration, LastSeq: last}
	if err := sh.Swap(ctx, Durable, done, func(context.Context) error { return g.inject("swap") }); err != nil {
		return 0, err
	}
	swapped = true
	g.Log.InfoContext(ctx, "rebuilt the rollups; the rebuilt tables are in use", "last_sequence", last, "events", r.applied,
		"took", time.Since(r.started).Round(time.Millisecond), "consumer_paused", time.Since(paused).Round(time.Millisecond))
	return last, nil
}

func (g *Gate) inject(stage string) error {
	if g.fault == nil {
		return nil
	}
	return g.fault(stage)
}

// history is what JetStream says the stream holds.
func history(info *jetstream.StreamInfo) app.StreamHistory {
	return app.StreamHistory{Stream: info.Config.Name, Created: info.Created, FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq,
		FirstTime: info.State.FirstTime, Deleted: uint64(max(0, info.State.NumDeleted))}
}

// replay reads the stream in order (an ordered consumer: no gaps, no
// redeliveries) and applies it to the shadow tables, a batch per
// transaction. No savepoint per message: more than 64 subtransactions in
// one transaction slow every snapshot in the database down (the
// subtransaction cache overflows); a batch with bad input is tried again
// with that message refused instead.
type replay struct {
	g     *Gate
	sh    *app.Shadow
	cons  jetstream.Consumer
	batch int
	// last is the stream sequence of the last message applied; target the
	// sequence the rebuild is heading for (for the progress log).
	last, target    uint64
	applied         int
	started, logged time.Time
}

// replayAttempts is how often a batch that fails (not for bad input, which
// is refused and recorded) is tried before the rebuild gives up.
const replayAttempts = 5

// round applies the next batch; it returns how many messages it applied
// and how many more the stream held when the last of them was delivered.
func (r *replay) round(ctx context.Context) (int, uint64, error) {
	b, err := r.cons.FetchNoWait(r.batch)
	if err != nil {
		return 0, 0, fmt.Errorf("consumer: replay: fetch: %w", err)
	}
	var msgs []jetstream.Msg
	for m := range b.Messages() {
		msgs = append(msgs, m)
	}
	if err := b.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
		return 0, 0, fmt.Errorf("consumer: replay: fetch: %w", err)
	}
	if len(msgs) == 0 {
		return 0, 0, nil
	}
	md, err := msgs[len(msgs)-1].Metadata()
	if err != nil {
		return 0, 0, fmt.Errorf("consumer: replay: %w", err)
	}
	// Messages found bad input in an earlier try of this batch: refused
	// without being applied (a refused event may have written before it
	// was refused, so the whole batch is tried again without it).
	refused := map[int]*invalid.Error{}
	for attempt := 1; ; attempt++ {
		err := r.sh.Tx(ctx, func(tx pgx.Tx) error {
			for i, m := range msgs {
				if err := r.g.replayOne(ctx, tx, m, refused[i]); err != nil {
					if bad, ok := invalid.As(err); ok && refused[i] == nil {
						refused[i] = bad
						return errRetryBatch
					}
					return err
				}
			}
			return r.g.inject("replay")
		})
		if err == nil {
			break
		}
		if errors.Is(err, errRetryBatch) {
			attempt--
			continue
		}
		if inbox.IsTransient(err) || ctx.Err() != nil || attempt == replayAttempts {
			return 0, 0, fmt.Errorf("consumer: replay of sequences %d to %d: %w", r.last+1, md.Sequence.Stream, err)
		}
		r.g.Log.WarnContext(ctx, "replaying a batch failed; trying again", "up_to_sequence", md.Sequence.Stream, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(backoff(200*time.Millisecond, 5*time.Second, attempt)):
		}
	}
	r.last = md.Sequence.Stream
	r.applied += len(msgs)
	if time.Since(r.logged) >= 10*time.Second {
		r.logged = time.Now()
		r.g.Log.InfoContext(ctx, "rebuilding", "sequence", r.last, "of", r.target, "events", r.applied)
	}
	return len(msgs), md.NumPending, nil
}

// errRetryBatch: a message of the batch turned out to be bad input; the
// batch is tried again with it refused.
var errRetryBatch = errors.New("consumer: replay: bad input in the batch; trying it again without")

// replayOne applies one replayed message within tx as the consumer does:
// its inbox row unless it is Keyed (a duplicate changes nothing) and the
// event through app.ApplyEventTx; bad input comes back as the *invalid.Error. A message
// known to be bad (bad set) is refused instead: recorded in rejected_events
// with its dead letter (in the shadow tables: the swap publishes only the
// new ones), without an inbox row, as the consumer does.
func (g *Gate) replayOne(ctx context.Context, tx pgx.Tx, msg jetstream.Msg, bad *invalid.Error) error {
	id := inbox.EventID(msg)
	if bad != nil {
		return g.refuse(ctx, tx, msg, id, bad)
	}
	if Keyed(msg.Subject()) {
		// Claimed only when its entry cannot tell, as the consumer does.
		ctx = app.Replaying(ctx, Durable, id)
	} else {
		claimed, err := store.ClaimEvent(ctx, tx, Durable, id)
		if err != nil || !claimed {
			return err
		}
	}
	ev, err := Events.Decode(msg.Subject(), msg.Data())
	if err != nil {
		return err
	}
	return g.App.ApplyEventTx(ctx, tx, ev)
}

// refuse records a refused message within tx, once.
func (g *Gate) refuse(ctx context.Context, tx pgx.Tx, msg jetstream.Msg, id string, bad *invalid.Error) error {
	refused, err := store.Refused(ctx, tx, msg.Subject(), id)
	if err != nil || refused {
		return err
	}
	tenantID := tenant.Default
	if ev, err := Events.Decode(msg.Subject(), msg.Data()); err == nil {
		if t := tenant.Of(ev); t != "" {
			tenantID = t
		}
	}
	_, err = inbox.Reject(ctx, tx, inbox.Rejection{Service: g.Service, Tenant: tenantID, Source: msg.Subject(), EventID: id,
		ContentType: msg.Headers().Get(stream.HeaderContentType), Payload: msg.Data(), Err: bad})
	return err
}
