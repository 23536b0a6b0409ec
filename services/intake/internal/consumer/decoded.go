package consumer

import (
	"slices"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/intake/internal/ingest"
)

// decodedLimit bounds what a decodes keeps: past this many payload bytes
// it starts afresh (a message decoded again costs time, never a result).
const decodedLimit = 8 << 20

// decodes keeps the events of the ingress messages in flight, decoded once:
// the consumer reads a message's event to key it (Key), to name it (ID),
// to read its batch (Prepare) and to handle it, which would otherwise be
// four decodings of its JSON. It is keyed by the payload and its
// Content-Type, so it never answers for another message than the one
// decoded; Handle takes its entry out. Safe for concurrent use; the events
// it hands out are shared, to read only (handle clones its own).
type decodes struct {
	mu    sync.Mutex
	m     map[string]decoded
	bytes int
}

type decoded struct {
	contentType string
	ev          *eventsv1.ServiceCompleted
	unknown     []string
	err         error
}

// get returns the message's event and the JSON keys it dropped
// (ingest.DecodeUnknown), decoding it the first time.
func (d *decodes) get(msg jetstream.Msg) decoded {
	ct, data := msg.Headers().Get(stream.HeaderContentType), msg.Data()
	d.mu.Lock()
	e, ok := d.m[string(data)]
	d.mu.Unlock()
	if ok && e.contentType == ct {
		return e
	}
	e = decoded{contentType: ct}
	e.ev, e.unknown, e.err = ingest.DecodeUnknown(ct, data)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil || d.bytes+len(data) > decodedLimit {
		d.m, d.bytes = map[string]decoded{}, 0
	}
	if _, ok := d.m[string(data)]; !ok {
		d.bytes += len(data)
	}
	d.m[string(data)] = e
	return e
}

// take is get for the message's handler: its own copy of the event (the
// handler normalizes it in place), and the entry let go.
func (d *decodes) take(msg jetstream.Msg) (*eventsv1.ServiceCompleted, []string, error) {
	e := d.get(msg)
	d.mu.Lock()
	if _, ok := d.m[string(msg.Data())]; ok {
		delete(d.m, string(msg.Data()))
		d.bytes -= len(msg.Data())
	}
	d.mu.Unlock()
	if e.err != nil {
		return nil, nil, e.err
	}
	return proto.CloneOf(e.ev), slices.Clone(e.unknown), nil
}
