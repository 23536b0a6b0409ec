package stream_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/natstest"
	"github.com/huifang/huifang/pkg/stream"
)

func TestEnsureProvisionsTheThreeStreamsIdempotently(t *testing.T) {
	srv := natstest.Start(t)
	ctx := context.Background()
	nc, js, err := stream.Connect(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), srv.ClientURL(), "test")
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, stream.Ensure(ctx, js, stream.Config{}))
	first, err := js.Stream(ctx, stream.EventsStream)
	require.NoError(t, err)
	require.NoError(t, stream.Ensure(ctx, js, stream.Config{}))
	for name, subject := range map[string]string{
		stream.IngressStream: stream.IngressSubjects,
		stream.EventsStream:  stream.EventsSubjects,
		stream.DLQStream:     stream.DLQSubjects,
	} {
		s, err := js.Stream(ctx, name)
		require.NoError(t, err)
		info := s.CachedInfo()
		require.Equal(t, []string{subject}, info.Config.Subjects)
		want := 2 * time.Minute
		if name == stream.IngressStream {
			want = stream.IngressDuplicateWindow // intake drops resends by the source's own ids
		}
		require.Equal(t, want, info.Config.Duplicates)
	}
	again, err := js.Stream(ctx, stream.EventsStream)
	require.NoError(t, err)
	require.Equal(t, first.CachedInfo().Created, again.CachedInfo().Created)
}

func TestTraceContextTravelsInHeaders(t *testing.T) {
	h := nats.Header{}
	h.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	ctx := stream.ExtractTrace(context.Background(), h)
	out := nats.Header{}
	stream.InjectTrace(ctx, out)
	require.Equal(t, h.Get("traceparent"), out.Get("traceparent"), "written in lower case, as W3C names it")

	capital := nats.Header{"Traceparent": {h.Get("traceparent")}}
	out = nats.Header{}
	stream.InjectTrace(stream.ExtractTrace(context.Background(), capital), out)
	require.Equal(t, h.Get("traceparent"), out.Get("traceparent"), "read in any case")
}

func TestConnectGivesUpWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, _, err := stream.Connect(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), "nats://127.0.0.1:1", "test")
	require.ErrorContains(t, err, "not reachable")
}

func TestOf(t *testing.T) {
	for subject, want := range map[string]string{
		stream.SubjectIngressServiceCompleted: stream.IngressStream,
		stream.SubjectVisitDue:                stream.EventsStream,
		stream.DeadLetterSubject("intake"):    stream.DLQStream,
		"elsewhere.events.x":                  "",
	} {
		if got := stream.Of(subject); got != want {
			t.Errorf("Of(%q) = %q, want %q", subject, got, want)
		}
	}
}
