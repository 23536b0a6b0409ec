package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/stream"
)

// DefaultMaxEventBytes is the default of MAX_EVENT_BYTES: the most bytes an
// event may have, coming in (its encoding as it arrives) and going out (the
// ServiceCompleted and CustomerUpdated intake publishes for it). It keeps
// every message intake puts on NATS far below the server's max_payload
// (1 MiB by default), headers and dead-letter reasons included.
const DefaultMaxEventBytes = 256 << 10

// CheckSize refuses an input whose encoding (size bytes) is larger than
// limit: a NATS message's payload, a webhook body, an event's protobuf
// encoding. It is the first check of every path, made before the input is
// decoded.
func CheckSize(size, limit int) error {
	if size <= limit {
		return nil
	}
	return TooLarge(limit)
}

// TooLarge is the violation of an input larger than limit bytes.
func TooLarge(limit int) *invalid.Error {
	return invalid.New("payload", fmt.Sprintf("must be at most %d bytes", limit))
}

// TooLargeToPublish is the violation of an input that fits the limit but
// whose outgoing event (event, size bytes: the service with the customer as
// archived, or the customer's CustomerUpdated) would not; field names what
// the input changed ("payload" for an ingested event).
func TooLargeToPublish(field, event string, size, limit int) *invalid.Error {
	return invalid.New(field, fmt.Sprintf("must be at most %d bytes: the %s intake would publish for it, with the customer as archived, would have %d", limit, event, size))
}

// PeekTenant reads the tenant an ingress payload names without decoding
// the event (for a payload too large to decode, which is refused but kept
// under its tenant): in protobuf it skips over the top-level fields but
// tenant_id; in JSON it reads the top-level keys until "tenant_id" (or
// "tenantId"). "" when there is none or the payload is not of the shape
// before it.
func PeekTenant(contentType string, data []byte) string {
	switch ContentType(contentType, data) {
	case stream.ContentTypeJSON:
		return peekJSONString(data, "tenant_id", "tenantId")
	case stream.ContentTypeProtobuf:
		return peekProtoString(data, tenantField)
	}
	return ""
}

// peekJSONString reads the top-level object's keys in order until one of
// names, and returns its string value: the values before it are skipped, the
// rest is not read (a payload cut short after it still tells it).
func peekJSONString(data []byte, names ...string) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ""
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		if key, _ := tok.(string); slices.Contains(names, key) {
			var v string
			if dec.Decode(&v) != nil {
				return ""
			}
			return v
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return ""
		}
	}
	return ""
}

var tenantField = (&eventsv1.ServiceCompleted{}).ProtoReflect().Descriptor().Fields().ByName("tenant_id").Number()

// peekProtoString returns the last value of the top-level string field num
// (protobuf: the last one wins), skipping every other field unread.
func peekProtoString(data []byte, num protowire.Number) string {
	var out string
	for len(data) > 0 {
		n, typ, l := protowire.ConsumeTag(data)
		if l < 0 {
			return ""
		}
		data = data[l:]
		if n == num && typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(data)
			if l < 0 {
				return ""
			}
			out, data = string(v), data[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(n, typ, data)
		if l < 0 {
			return ""
		}
		data = data[l:]
	}
	return out
}
