package watch_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	watchv1 "github.com/huifang/huifang/proto/huifang/watch/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/natstest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/pkg/watch"
)

// bench is a NATS server with the streams, a service's connection under the
// service's own NATS permissions (stream.ServicePermissions: the watches'
// ordered consumers need no other right), and a state that events change.
type bench struct {
	js    jetstream.JetStream
	state atomic.Int64
	n     atomic.Int64
}

func setup(t *testing.T) *bench {
	t.Helper()
	srv := natstest.StartWithUsers(t, natstest.User("dispatch", "pw", stream.ServicePermissions("dispatch")))
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("dispatch", "pw"))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, stream.Ensure(context.Background(), js, stream.Config{}))
	return &bench{js: js}
}

// change changes the state, then publishes the event that tells it (as the
// outbox does: the state is committed before the event), and returns its
// sequence.
func (b *bench) change(t *testing.T, subject string) uint64 {
	t.Helper()
	if subject == stream.SubjectVisitAssigned {
		b.state.Add(1)
	}
	ack, err := b.js.PublishMsg(context.Background(), &nats.Msg{Subject: subject, Data: []byte("x"),
		Header: nats.Header{nats.MsgIdHdr: []string{fmt.Sprintf("ev-%d", b.n.Add(1))}}})
	require.NoError(t, err)
	return ack.Sequence
}

func (b *bench) spec() watch.Spec {
	return watch.Spec{
		Subjects: []string{stream.SubjectVisitAssigned, stream.SubjectVisitAttempted},
		Snapshot: func(context.Context) (proto.Message, error) { return wrapperspb.Int64(b.state.Load()), nil },
		Relevant: func(subject string, _ []byte) bool { return subject == stream.SubjectVisitAssigned },
	}
}

// watching runs one watch in the background; its updates arrive on the
// channel, its end on done.
type watching struct {
	updates chan watch.Update
	done    chan error
	cancel  context.CancelFunc
}

func start(ctx context.Context, h *watch.Hub, cursor string, spec watch.Spec) *watching {
	ctx, cancel := context.WithCancel(ctx)
	w := &watching{updates: make(chan watch.Update, 100), done: make(chan error, 1), cancel: cancel}
	go func() {
		w.done <- h.Run(ctx, cursor, spec, func(u watch.Update) error { w.updates <- u; return nil })
	}()
	return w
}

func (w *watching) next(t *testing.T, skipHeartbeats bool) watch.Update {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case u := <-w.updates:
			if skipHeartbeats && u.Kind == watchv1.Kind_KIND_HEARTBEAT {
				continue
			}
			return u
		case err := <-w.done:
			t.Fatalf("the watch ended: %v", err)
		case <-deadline:
			t.Fatal("no update in 20 s")
		}
	}
}

func value(t *testing.T, u watch.Update) int64 {
	t.Helper()
	require.NotNil(t, u.State)
	return u.State.(*wrapperspb.Int64Value).GetValue()
}

func subjects(evs []*watchv1.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.GetSubject())
	}
	return out
}

// A watch sends the state first, with the cursor of the stream's last
// sequence; then the state again after each relevant event, with the
// event and its sequence as cursor; an irrelevant event sends nothing but
// moves the heartbeat's cursor. A resume from a cursor sends a snapshot
// listing the events since it (nothing lost while no watch ran).
func TestWatchSnapshotChangesAndResume(t *testing.T) {
	b := setup(t)
	h := watch.NewHub(b.js, nil, watch.Limits{Heartbeat: 200 * time.Millisecond})
	ctx := context.Background()
	before := b.change(t, stream.SubjectVisitAssigned)

	w := start(ctx, h, "", b.spec())
	u := w.next(t, true)
	require.Equal(t, watchv1.Kind_KIND_SNAPSHOT, u.Kind)
	require.Equal(t, watch.Cursor(before), u.Cursor)
	require.Equal(t, int64(1), value(t, u))
	require.Empty(t, u.Events)

	seq := b.change(t, stream.SubjectVisitAssigned)
	u = w.next(t, true)
	require.Equal(t, watchv1.Kind_KIND_CHANGE, u.Kind)
	require.Equal(t, watch.Cursor(seq), u.Cursor)
	require.Equal(t, int64(2), value(t, u))
	require.Len(t, u.Events, 1)
	require.Equal(t, seq, u.Events[0].GetSequence())
	require.Equal(t, "ev-2", u.Events[0].GetId())

	quiet := b.change(t, stream.SubjectVisitAttempted)
	require.Eventually(t, func() bool {
		u := w.next(t, false)
		require.NotEqual(t, watchv1.Kind_KIND_CHANGE, u.Kind, "an irrelevant event sends no state")
		return u.Kind == watchv1.Kind_KIND_HEARTBEAT && u.Cursor == watch.Cursor(quiet)
	}, 20*time.Second, time.Millisecond, "the heartbeat carries the cursor past the irrelevant event")
	w.cancel()
	require.NoError(t, <-w.done, "a client that goes away ends the watch without error")

	// While no one watches (the service restarted), two changes.
	first := b.change(t, stream.SubjectVisitAssigned)
	b.change(t, stream.SubjectVisitAttempted)
	second := b.change(t, stream.SubjectVisitAssigned)
	w = start(ctx, h, watch.Cursor(quiet), b.spec())
	u = w.next(t, true)
	require.Equal(t, watchv1.Kind_KIND_SNAPSHOT, u.Kind)
	require.Equal(t, watch.Cursor(second), u.Cursor)
	require.Equal(t, int64(4), value(t, u))
	require.Equal(t, []string{stream.SubjectVisitAssigned, stream.SubjectVisitAssigned}, subjects(u.Events))
	require.Equal(t, first, u.Events[0].GetSequence())

	// Nothing happened since: the snapshot lists nothing.
	w2 := start(ctx, h, u.Cursor, b.spec())
	u2 := w2.next(t, true)
	require.Equal(t, watchv1.Kind_KIND_SNAPSHOT, u2.Kind)
	require.Equal(t, u.Cursor, u2.Cursor)
	require.Empty(t, u2.Events)

	// Live again.
	seq = b.change(t, stream.SubjectVisitAssigned)
	require.Equal(t, watch.Cursor(seq), w.next(t, true).Cursor)
	require.Equal(t, watch.Cursor(seq), w2.next(t, true).Cursor)
	w.cancel()
	w2.cancel()
}

// Events within Coalesce of the first are sent as one update.
func TestWatchCoalesces(t *testing.T) {
	b := setup(t)
	h := watch.NewHub(b.js, nil, watch.Limits{})
	spec := b.spec()
	spec.Coalesce = 500 * time.Millisecond
	w := start(context.Background(), h, "", spec)
	defer w.cancel()
	require.Equal(t, watchv1.Kind_KIND_SNAPSHOT, w.next(t, true).Kind)
	for range 3 {
		b.change(t, stream.SubjectVisitAssigned)
	}
	u := w.next(t, true)
	require.Equal(t, watchv1.Kind_KIND_CHANGE, u.Kind)
	require.Len(t, u.Events, 3)
	require.Equal(t, int64(3), value(t, u))
}

// A cursor ahead of the stream (recreated) or of a form no watch sends is
// refused; a stream whose first messages are gone refuses a cursor before
// them (expired): the client watches again without a cursor.
func TestWatchRefusesUnknownCursors(t *testing.T) {
	b := setup(t)
	h := watch.NewHub(b.js, nil, watch.Limits{})
	ctx := context.Background()
	seq := b.change(t, stream.SubjectVisitAssigned)
	b.change(t, stream.SubjectVisitAssigned)
	send := func(watch.Update) error { return nil }
	err := h.Run(ctx, watch.Cursor(seq+10), b.spec(), send)
	require.Equal(t, codes.OutOfRange, status.Code(err), "%v", err)

	s, err := b.js.Stream(ctx, stream.EventsStream)
	require.NoError(t, err)
	require.NoError(t, s.Purge(ctx, jetstream.WithPurgeSequence(seq+1)))
	err = h.Run(ctx, watch.Cursor(seq-1), b.spec(), send)
	require.Equal(t, codes.OutOfRange, status.Code(err), "%v", err)
	require.Contains(t, err.Error(), "expired")

	_, _, err = watch.Sequence("abc")
	require.Error(t, err)
}

// One caller holds at most PerCaller watches (RESOURCE_EXHAUSTED beyond,
// before anything is read), another caller has its own; the process at
// most Max. Drain ends every watch UNAVAILABLE and refuses new ones.
func TestWatchLimitsAndDrain(t *testing.T) {
	b := setup(t)
	h := watch.NewHub(b.js, nil, watch.Limits{PerCaller: 2, Max: 3})
	alice := auth.With(context.Background(), auth.Principal{Tenant: "acme", Subject: "alice"})
	bob := auth.With(context.Background(), auth.Principal{Tenant: "acme", Subject: "bob"})
	var ws []*watching
	for _, ctx := range []context.Context{alice, alice, bob} {
		w := start(ctx, h, "", b.spec())
		w.next(t, true)
		ws = append(ws, w)
	}
	require.Equal(t, 3, h.Active())
	err := h.Run(alice, "", b.spec(), func(watch.Update) error { return nil })
	require.Equal(t, codes.ResourceExhausted, status.Code(err))
	require.Contains(t, err.Error(), "per caller")
	err = h.Run(bob, "", b.spec(), func(watch.Update) error { return nil })
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "the process's bound")

	ws[0].cancel()
	require.NoError(t, <-ws[0].done)
	require.Eventually(t, func() bool { return h.Active() == 2 }, 10*time.Second, 10*time.Millisecond)
	w := start(alice, h, "", b.spec())
	w.next(t, true)

	h.Drain()
	var wg sync.WaitGroup
	for _, w := range append(ws[1:], w) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case err := <-w.done:
				if status.Code(err) != codes.Unavailable {
					t.Errorf("a drained watch ended %v, want Unavailable", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("a watch did not end on drain")
			}
		}()
	}
	wg.Wait()
	err = h.Run(bob, "", b.spec(), func(watch.Update) error { return nil })
	require.Equal(t, codes.Unavailable, status.Code(err))
}
