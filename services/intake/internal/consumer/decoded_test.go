package consumer

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/intake/internal/ingest"
)

// msg is an ingress message as the consumer reads it: its payload and
// Content-Type.
type msg struct {
	jetstream.Msg
	data []byte
	h    nats.Header
}

func (m msg) Data() []byte         { return m.data }
func (m msg) Headers() nats.Header { return m.h }

func jsonMsg(body string) msg {
	return msg{data: []byte(body), h: nats.Header{stream.HeaderContentType: {"application/json"}}}
}

// The decodes hand out what ingest.DecodeUnknown reads, decoded once per
// payload; the handler's copy is its own; a payload under another
// Content-Type is decoded again; past the limit the entries start afresh.
func TestDecodes(t *testing.T) {
	var d decodes
	m := jsonMsg(`{"source_system":"s","source_event_id":"e-1","service_type":" repair ","customer":{"external_id":"c","grade":"A"}}`)
	first := d.get(m)
	require.NoError(t, first.err)
	require.Same(t, first.ev, d.get(m).ev, "decoded once")
	require.Equal(t, []string{"customer.grade"}, first.unknown)

	ev, unknown, err := d.take(m)
	require.NoError(t, err)
	require.True(t, proto.Equal(first.ev, ev))
	require.NotSame(t, first.ev, ev, "the handler's own copy")
	require.Equal(t, first.unknown, unknown)
	ingest.Normalize(ev)
	require.Equal(t, " repair ", first.ev.ServiceType, "what the handler changes is not shared")
	require.Empty(t, d.m, "take lets the entry go")

	bad := jsonMsg(`{"service_type":7}`)
	_, _, err = d.take(bad)
	_, want := ingest.Decode("application/json", bad.data)
	require.EqualError(t, err, want.Error())

	asProto := msg{data: m.data, h: nats.Header{stream.HeaderContentType: {"application/protobuf"}}}
	require.Error(t, d.get(asProto).err, "the same bytes as protobuf are read as protobuf")
	require.NoError(t, d.get(m).err, "and again as JSON")

	d.bytes = decodedLimit
	d.get(jsonMsg(`{"source_system":"t"}`))
	require.Len(t, d.m, 1, "past the limit, afresh")
}

// BenchmarkDecodes is what the ingress consumer spends decoding one JSON
// message (Key, ID, Prepare, Handle): before, four decodings and a walk for
// the unknown keys; with the decodes, one.
func BenchmarkDecodes(b *testing.B) {
	msgs := make([]jetstream.Msg, 1000)
	for i := range msgs {
		msgs[i] = jsonMsg(fmt.Sprintf(`{"source_system":"bench","source_event_id":"e-%d","service_type":"repair","completed_at":"2026-11-20T10:00:00Z","amount_minor":%d,"staff_id":"s-%d","customer":{"external_id":"c-%d","name":"客户%d","phone":"+86138%08d"}}`,
			i, 1000+i, i%7, i%251, i, i))
	}
	b.Run("decode each time", func(b *testing.B) {
		i := 0
		for b.Loop() {
			m := msgs[i%len(msgs)]
			i++
			ct := m.Headers().Get(stream.HeaderContentType)
			for range 4 {
				if _, err := ingest.Decode(ct, m.Data()); err != nil {
					b.Fatal(err)
				}
			}
			if ingest.UnknownJSON(m.Data()) != nil {
				b.Fatal("unknown keys")
			}
		}
	})
	b.Run("decodes", func(b *testing.B) {
		var d decodes
		i := 0
		for b.Loop() {
			m := msgs[i%len(msgs)]
			i++
			for range 3 {
				if d.get(m).err != nil {
					b.Fatal("does not decode")
				}
			}
			if _, unknown, err := d.take(m); err != nil || unknown != nil {
				b.Fatal(err, unknown)
			}
		}
	})
}
