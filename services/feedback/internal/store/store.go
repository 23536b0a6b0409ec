// Package store keeps feedback's visits, records, complaints,
// questionnaires and reviews in Postgres (schema feedback): load and save,
// queries, and update-by-closure for what a use case reads, decides and
// writes. Every function takes the postgres.Querier (or the pgx.Tx) of the
// caller's transaction, so the app composes them in one commit. The store
// decides no rule and writes no event: the app does.
package store

import (
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// jsonList encodes messages as a JSON array of their protojson, the form
// of the jsonb list columns.
func jsonList[M proto.Message](list []M) ([]byte, error) {
	raw := make([]json.RawMessage, 0, len(list))
	for _, m := range list {
		b, err := protojson.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("store: encode %T: %w", m, err)
		}
		raw = append(raw, b)
	}
	return json.Marshal(raw)
}

// fromJSONList decodes what jsonList encodes.
func fromJSONList[M interface {
	proto.Message
	*T
}, T any](b []byte) ([]M, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	out := make([]M, 0, len(raw))
	for _, r := range raw {
		m := M(new(T))
		if err := protojson.Unmarshal(r, m); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// nullTime is t for a nullable column: NULL for the zero time.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// timeOf reads a nullable column: the zero time for NULL.
func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}
