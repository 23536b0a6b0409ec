package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/natstest"
	"github.com/huifang/huifang/pkg/stream"
)

func TestPublishPrintsTheSequence(t *testing.T) {
	ns := natstest.Start(t)
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, stream.Ensure(t.Context(), js, stream.Config{}))

	file := filepath.Join(t.TempDir(), "event.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"from":"file"}`), 0o644))

	tests := []struct {
		name  string
		args  []string
		stdin string
		want  string
		data  string
	}{
		{"argument", []string{"-nats", ns.ClientURL(), `{"from":"arg"}`}, "", "1", `{"from":"arg"}`},
		{"stdin", []string{"-nats", ns.ClientURL()}, `{"from":"stdin"}`, "2", `{"from":"stdin"}`},
		{"file", []string{"-nats", ns.ClientURL(), "-file", file}, "", "3", `{"from":"file"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			require.NoError(t, run(tt.args, strings.NewReader(tt.stdin), &out))
			require.Equal(t, tt.want+"\n", out.String())
			str, err := js.Stream(t.Context(), stream.IngressStream)
			require.NoError(t, err)
			msg, err := str.GetLastMsgForSubject(t.Context(), stream.SubjectIngressServiceCompleted)
			require.NoError(t, err)
			require.Equal(t, tt.data, string(msg.Data))
			require.Equal(t, stream.ContentTypeJSON, msg.Header.Get(stream.HeaderContentType))
		})
	}
}

func TestPublishWithoutStreamSaysWhy(t *testing.T) {
	ns := natstest.Start(t)
	err := run([]string{"-nats", ns.ClientURL(), "-timeout", "2s", `{}`}, strings.NewReader(""), &bytes.Buffer{})
	require.ErrorContains(t, err, "start the services first")
}

func TestPayloadSources(t *testing.T) {
	_, err := payload("f.json", []string{"{}"}, nil)
	require.ErrorContains(t, err, "not both")
	_, err = payload("", []string{"{}", "{}"}, nil)
	require.ErrorContains(t, err, "one argument")
	_, err = payload(filepath.Join(t.TempDir(), "missing.json"), nil, nil)
	require.ErrorContains(t, err, "read event")
	b, err := payload("-", nil, strings.NewReader("x"))
	require.NoError(t, err)
	require.Equal(t, "x", string(b))
}
