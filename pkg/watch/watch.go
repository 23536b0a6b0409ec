// Package watch holds the server-streaming watches of the services' APIs
// (dispatch's WatchQueue and WatchWallboard, feedback's WatchComplaint): a
// watch sends a snapshot of some state, then the state again whenever an
// event on the events stream changed it, fed by an ephemeral ordered
// JetStream consumer that starts from a cursor (the events stream's
// sequence), so that a client resumes after a restart of the service from
// the last cursor it got and misses nothing. A Hub bounds the watches per
// caller and per process, sends heartbeats on a quiet stream, and ends
// every watch when the service drains.
//
// The contract a client sees (docs/dispatch.md, "Watches"):
//   - the first update is a snapshot (Kind SNAPSHOT) with the cursor it is
//     consistent with: the stream's last sequence is read BEFORE the state,
//     so an event after the cursor may already show in the snapshot (an
//     update reflects it again: updates are whole states, idempotent), and
//     none before it is missing;
//   - with a cursor (a resume), the consumer starts just after it
//     (DeliverByStartSequence cursor+1); the snapshot then lists the events
//     since the cursor; a cursor the stream no longer holds (expired by
//     the stream's max age) or never held (ahead of it: the stream was
//     recreated) is refused OUT_OF_RANGE, and the client watches again
//     without a cursor for a fresh snapshot;
//   - each relevant event (Spec.Relevant) leads to an update (Kind CHANGE)
//     carrying the state read after it and the events it reflects; events
//     within Spec.Coalesce of the first are sent as one update;
//   - every Spec.Refresh the state is sent again (Kind REFRESH): figures
//     that move with time (ages, deadlines);
//   - after Heartbeat without an update, a heartbeat (no state, the cursor
//     to resume from), so that a client detects a dead stream;
//   - more than PerCaller watches of one caller (tenant and subject), or
//     more than Max in the process, are refused RESOURCE_EXHAUSTED;
//   - when the service drains (Drain) every watch ends UNAVAILABLE and the
//     client resumes with its last cursor on another replica or after the
//     restart.
package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	watchv1 "github.com/huifang/huifang/proto/huifang/watch/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/stream"
)

// Defaults of a Hub's limits.
const (
	DefaultPerCaller = 5
	DefaultMax       = 1000
	DefaultHeartbeat = 15 * time.Second
	// MaxEvents bounds the events one update lists (the latest are kept).
	MaxEvents = 256
)

// Limits bound a process's watches.
type Limits struct {
	// PerCaller is how many watches one caller (tenant and subject) may
	// hold at once; DefaultPerCaller when zero.
	PerCaller int
	// Max is how many watches the process serves at once; DefaultMax when zero.
	Max int
	// Heartbeat is how long a watch stays quiet before it sends a
	// heartbeat; DefaultHeartbeat when zero.
	Heartbeat time.Duration
}

// Hub runs a process's watches on one JetStream stream.
type Hub struct {
	js     jetstream.JetStream
	stream string
	limits Limits
	log    *slog.Logger

	mu       sync.Mutex
	callers  map[string]int
	total    int
	draining chan struct{}
	drained  bool
}

// NewHub returns a hub of watches over the events stream.
func NewHub(js jetstream.JetStream, log *slog.Logger, l Limits) *Hub {
	if l.PerCaller <= 0 {
		l.PerCaller = DefaultPerCaller
	}
	if l.Max <= 0 {
		l.Max = DefaultMax
	}
	if l.Heartbeat <= 0 {
		l.Heartbeat = DefaultHeartbeat
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{js: js, stream: stream.EventsStream, limits: l, log: log, callers: map[string]int{}, draining: make(chan struct{})}
}

// Drain ends every watch (UNAVAILABLE: resume with the last cursor) and
// refuses new ones: the service is shutting down. The runtime calls it
// before it stops gRPC, whose graceful stop would otherwise wait for the
// streams until its grace ran out.
func (h *Hub) Drain() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.drained {
		h.drained = true
		close(h.draining)
	}
}

// Active returns how many watches run now.
func (h *Hub) Active() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

// Spec is what one watch follows.
type Spec struct {
	// Subjects filter the events stream (at least one).
	Subjects []string
	// Snapshot reads the current state.
	Snapshot func(ctx context.Context) (proto.Message, error)
	// Relevant tells whether an event changes the state; nil: every event
	// of Subjects does. An irrelevant event only moves the cursor.
	Relevant func(subject string, data []byte) bool
	// Settle, when set, waits until the service has applied an event it
	// consumes itself (its inbox holds the event id, or the state shows
	// what the event is about, for an event that keeps no inbox entry),
	// given the event's subject, id and payload, before the state is read
	// again: the state of a service changes after the event, not before.
	// An error ends the wait (the state is read anyway).
	Settle func(ctx context.Context, subject, eventID string, data []byte) error
	// Coalesce: after a relevant event, wait this long for more before the
	// state is read and sent once; zero sends at once.
	Coalesce time.Duration
	// Refresh: send the state again this often without an event; zero never.
	Refresh time.Duration
}

// Update is one message of a watch.
type Update struct {
	// Cursor resumes the watch just after this update.
	Cursor string
	Kind   watchv1.Kind
	// Events the update reflects, oldest first.
	Events []*watchv1.Event
	// State is nil on heartbeats.
	State proto.Message
}

// Sequence returns the stream sequence a cursor names; a blank cursor is 0
// and false. A cursor of another form is an *invalid.Error (field cursor).
func Sequence(cursor string) (uint64, bool, error) {
	cursor = strings.TrimSpace(cursor)
	if cursor == "" {
		return 0, false, nil
	}
	seq, err := strconv.ParseUint(cursor, 10, 64)
	if err != nil {
		return 0, false, invalid.New("cursor", "must be a cursor a watch sent (a decimal number), or empty")
	}
	return seq, true, nil
}

// Cursor is the cursor of a stream sequence.
func Cursor(seq uint64) string { return strconv.FormatUint(seq, 10) }

// Run serves one watch until ctx ends (the client went away: nil), send
// fails, the hub drains (UNAVAILABLE) or the events stream fails. The
// caller (auth.From(ctx): tenant and subject) is held to the limits.
// cursor is the request's (blank: a fresh watch).
func (h *Hub) Run(ctx context.Context, cursor string, spec Spec, send func(Update) error) error {
	if len(spec.Subjects) == 0 || spec.Snapshot == nil {
		return fmt.Errorf("watch: a spec needs subjects and a snapshot")
	}
	after, resume, err := Sequence(cursor)
	if err != nil {
		return err
	}
	release, err := h.admit(callerOf(ctx))
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The stream's last sequence, before the state is read.
	info, err := h.streamInfo(ctx)
	if err != nil {
		return err
	}
	last, first := info.State.LastSeq, info.State.FirstSeq
	if resume {
		switch {
		case after > last:
			return status.Errorf(codes.OutOfRange, "cursor %d is ahead of the events stream (last sequence %d): the stream was recreated; watch again without a cursor", after, last)
		case first > 0 && after+1 < first:
			return status.Errorf(codes.OutOfRange, "cursor %d has expired: the events stream keeps sequences from %d; watch again without a cursor", after, first)
		}
	} else {
		after = last
	}
	cons, err := h.js.OrderedConsumer(ctx, h.stream, jetstream.OrderedConsumerConfig{FilterSubjects: spec.Subjects,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: after + 1, InactiveThreshold: time.Minute})
	if err != nil {
		return status.Errorf(codes.Unavailable, "the events stream is not reachable for the moment; watch again with the last cursor: %v", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(100))
	if err != nil {
		return status.Errorf(codes.Unavailable, "the events stream is not reachable for the moment; watch again with the last cursor: %v", err)
	}
	defer it.Stop()
	msgs := make(chan jetstream.Msg)
	failed := make(chan error, 1)
	go func() {
		for {
			m, err := it.Next()
			if err != nil {
				if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					failed <- err
				}
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()

	w := &run{hub: h, spec: spec, send: send, seen: after, sent: after}
	// A resume first catches up with what the stream held at the start,
	// then sends one snapshot listing it.
	catchingUp := false
	if resume {
		if ci := cons.CachedInfo(); ci != nil && ci.NumPending > 0 {
			catchingUp = true
		}
	}
	if !catchingUp {
		if err := w.flush(ctx, watchv1.Kind_KIND_SNAPSHOT); err != nil {
			return err
		}
	}

	// Looked at three times a heartbeat, so that no silence lasts much
	// longer than one.
	heartbeat := time.NewTicker(h.limits.Heartbeat / 3)
	defer heartbeat.Stop()
	var refresh <-chan time.Time
	if spec.Refresh > 0 {
		t := time.NewTicker(spec.Refresh)
		defer t.Stop()
		refresh = t.C
	}
	var coalesced <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-h.draining:
			return status.Error(codes.Unavailable, "the service is shutting down; watch again with the last cursor")
		case err := <-failed:
			return status.Errorf(codes.Unavailable, "the events stream failed; watch again with the last cursor: %v", err)
		case m := <-msgs:
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			w.take(ctx, m, meta)
			if catchingUp {
				if meta.Sequence.Stream >= last || meta.NumPending == 0 {
					catchingUp = false
					if err := w.flush(ctx, watchv1.Kind_KIND_SNAPSHOT); err != nil {
						return err
					}
				}
				continue
			}
			if w.dirty && coalesced == nil {
				if spec.Coalesce <= 0 {
					if err := w.flush(ctx, watchv1.Kind_KIND_CHANGE); err != nil {
						return err
					}
					continue
				}
				coalesced = time.After(spec.Coalesce)
			}
		case <-coalesced:
			coalesced = nil
			if err := w.flush(ctx, watchv1.Kind_KIND_CHANGE); err != nil {
				return err
			}
		case <-refresh:
			if catchingUp || coalesced != nil {
				continue
			}
			kind := watchv1.Kind_KIND_REFRESH
			if w.dirty {
				kind = watchv1.Kind_KIND_CHANGE
			}
			if err := w.flush(ctx, kind); err != nil {
				return err
			}
		case <-heartbeat.C:
			if catchingUp || time.Since(w.lastSend) < h.limits.Heartbeat {
				continue
			}
			if err := w.beat(); err != nil {
				return err
			}
		}
	}
}

// run is the state of one watch.
type run struct {
	hub  *Hub
	spec Spec
	send func(Update) error
	// seen is the last sequence consumed; sent the cursor of the last
	// state sent (every event up to it is reflected).
	seen, sent uint64
	// dirty: a relevant event came after the last state sent.
	dirty    bool
	events   []*watchv1.Event
	lastSend time.Time
}

// take consumes one event: a relevant one is listed and makes the state
// dirty (waiting for the service to apply it, when it consumes it).
func (w *run) take(ctx context.Context, m jetstream.Msg, meta *jetstream.MsgMetadata) {
	w.seen = meta.Sequence.Stream
	if w.spec.Relevant != nil && !w.spec.Relevant(m.Subject(), m.Data()) {
		if !w.dirty {
			w.sent = w.seen
		}
		return
	}
	id := m.Headers().Get(nats.MsgIdHdr)
	if w.spec.Settle != nil && id != "" {
		if err := w.spec.Settle(ctx, m.Subject(), id, m.Data()); err != nil && ctx.Err() == nil {
			w.hub.log.WarnContext(ctx, "watch: the event was not applied in time; reading the state anyway", "subject", m.Subject(), "event", id, "err", err)
		}
	}
	w.dirty = true
	w.events = append(w.events, &watchv1.Event{Sequence: meta.Sequence.Stream, Subject: m.Subject(), Id: id, PublishedAt: timestamppb.New(meta.Timestamp)})
	if len(w.events) > MaxEvents {
		w.events = w.events[len(w.events)-MaxEvents:]
	}
}

// flush reads the state and sends it with the events it reflects.
func (w *run) flush(ctx context.Context, kind watchv1.Kind) error {
	cursor := w.seen
	state, err := w.spec.Snapshot(ctx)
	if err != nil {
		return err
	}
	if err := w.send(Update{Cursor: Cursor(cursor), Kind: kind, Events: w.events, State: state}); err != nil {
		return err
	}
	w.sent, w.dirty, w.events, w.lastSend = cursor, false, nil, time.Now()
	return nil
}

// beat sends a heartbeat with the cursor a resume would start from.
func (w *run) beat() error {
	if err := w.send(Update{Cursor: Cursor(w.sent), Kind: watchv1.Kind_KIND_HEARTBEAT}); err != nil {
		return err
	}
	w.lastSend = time.Now()
	return nil
}

func (h *Hub) streamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	s, err := h.js.Stream(ctx, h.stream)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "the events stream is not reachable for the moment; retry: %v", err)
	}
	return s.CachedInfo(), nil
}

// admit takes a place for one watch of caller, or refuses it.
func (h *Hub) admit(caller string) (func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.drained:
		return nil, status.Error(codes.Unavailable, "the service is shutting down; watch again on another replica")
	case h.callers[caller] >= h.limits.PerCaller:
		return nil, status.Errorf(codes.ResourceExhausted, "at most %d watches at once per caller: end one first", h.limits.PerCaller)
	case h.total >= h.limits.Max:
		return nil, status.Errorf(codes.ResourceExhausted, "the service serves at most %d watches at once; retry later or on another replica", h.limits.Max)
	}
	h.callers[caller]++
	h.total++
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.total--
		if h.callers[caller]--; h.callers[caller] <= 0 {
			delete(h.callers, caller)
		}
	}, nil
}

// callerOf names the caller of ctx: its tenant and subject ("" for a call
// without a principal, which only tests make).
func callerOf(ctx context.Context) string {
	p, ok := auth.From(ctx)
	if !ok {
		return ""
	}
	return p.Tenant + "/" + p.Subject
}

// Matching returns a Spec.Relevant over typed events (subject → event, as
// consumers name them): an event is relevant when each named string field
// of it has the value given ({"tenant_id": "acme", "complaint_id": "c-1"});
// an event that does not decode, or has no such field, is not.
func Matching(events inbox.Events, fields map[string]string) func(subject string, data []byte) bool {
	return func(subject string, data []byte) bool {
		ev, err := events.Decode(subject, data)
		if err != nil {
			return false
		}
		m := ev.ProtoReflect()
		for name, want := range fields {
			fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
			if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() || m.Get(fd).String() != want {
				return false
			}
		}
		return true
	}
}

// Subjects returns the subjects of events, sorted.
func Subjects(events inbox.Events) []string { return slices.Sorted(maps.Keys(events)) }
