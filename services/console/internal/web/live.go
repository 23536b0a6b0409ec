package web

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	watchv1 "github.com/huifang/huifang/proto/huifang/watch/v1"
)

// update is what the console needs of one message of a service's watch
// stream: its kind and the cursor to resume from.
type update interface {
	GetKind() watchv1.Kind
	GetCursor() string
}

// watcher opens a service's watch stream for the user of r (resuming at
// cursor when it is set) and returns its receive function.
type watcher func(ctx context.Context, r *http.Request, u *User, cursor string) (func() (update, error), error)

// live serves a Server-Sent Events stream for one topic (?topic=...): the
// event "change" each time the service's watch reports a change (the
// page then reloads the parts marked with that topic), comments as
// heartbeats, and "gone" with the reason when the watch ends; the
// browser's EventSource reconnects by itself with Last-Event-ID (the
// watch's cursor), so no change is missed across a reconnect.
func (s *Server) live(w http.ResponseWriter, r *http.Request, u *User) {
	topic := r.URL.Query().Get("topic")
	open, ok := s.liveTopics[topic]
	if !ok {
		http.Error(w, fmt.Sprintf("topic: unknown topic %q", topic), http.StatusBadRequest)
		return
	}
	rc := http.NewResponseController(w)
	// A live stream outlasts the server's write timeout.
	_ = rc.SetWriteDeadline(time.Time{})
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	recv, err := s.resume(ctx, open, r, u, r.Header.Get("Last-Event-ID"))
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err != nil {
		s.gone(w, rc, err)
		return
	}
	_, _ = fmt.Fprint(w, "retry: 5000\n\n")
	_ = rc.Flush()
	for {
		up, err := recv()
		if err != nil {
			if ctx.Err() == nil {
				s.gone(w, rc, err)
			}
			return
		}
		switch up.GetKind() {
		case watchv1.Kind_KIND_HEARTBEAT:
			_, err = fmt.Fprintf(w, ": alive\n\n")
		default:
			_, err = fmt.Fprintf(w, "id: %s\nevent: change\ndata: %s\n\n", up.GetCursor(), up.GetKind().String())
		}
		if err != nil || rc.Flush() != nil {
			return
		}
	}
}

// resume opens the watch at cursor, or afresh when the service no longer
// holds the cursor (OutOfRange): the page reloads on the snapshot anyway.
func (s *Server) resume(ctx context.Context, open watcher, r *http.Request, u *User, cursor string) (func() (update, error), error) {
	recv, err := open(ctx, r, u, cursor)
	if err != nil || cursor == "" {
		return recv, err
	}
	first, err := recv()
	if status.Code(err) == codes.OutOfRange {
		return open(ctx, r, u, "")
	}
	pending := true
	return func() (update, error) {
		if pending {
			pending = false
			return first, err
		}
		return recv()
	}, nil
}

// gone tells the page that the watch ended, and why (a gRPC code); the
// page falls back to reloading its parts now and then.
func (s *Server) gone(w http.ResponseWriter, rc *http.ResponseController, err error) {
	_, _ = fmt.Fprintf(w, "event: gone\ndata: %s\n\n", status.Code(err).String())
	_ = rc.Flush()
}

// topic lets the pages follow name live (GET /live?topic=name).
func (s *Server) topic(name string, w watcher) {
	if s.liveTopics == nil {
		s.liveTopics = map[string]watcher{}
	}
	s.liveTopics[name] = w
}

// watchQueue follows the user's own queue (an agent).
func (s *Server) watchQueue(ctx context.Context, _ *http.Request, u *User, cursor string) (func() (update, error), error) {
	st, err := s.api.Dispatch.WatchQueue(ctx, &dispatchv1.WatchQueueRequest{AgentId: u.AgentID, Cursor: cursor})
	if err != nil {
		return nil, err
	}
	return func() (update, error) { return st.Recv() }, nil
}

// watchWallboard follows the wallboard of the user's groups (?group=...).
func (s *Server) watchWallboard(ctx context.Context, r *http.Request, u *User, cursor string) (func() (update, error), error) {
	st, err := s.api.Dispatch.WatchWallboard(ctx, &dispatchv1.WatchWallboardRequest{Group: r.URL.Query().Get("group"), TimeZone: u.Loc.String(), Cursor: cursor})
	if err != nil {
		return nil, err
	}
	return func() (update, error) { return st.Recv() }, nil
}
