package webhook

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/intake/internal/ingest"
)

// FuzzDecode: whatever body a caller posts to /v1/services or
// /v1/services:batch, the webhook decodes it into the request or refuses
// it as bad input naming payload, and never panics. What it decodes comes
// back the same through JSON, and each event is then accepted or refused by
// intake's rules as bad input naming fields (what the app does next).
func FuzzDecode(f *testing.F) {
	const good = `{"source_system":"erp-demo","source_event_id":"e-1","service_type":"purchase","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c-1","name":"王芳","phone":"+8613800138000"}}`
	for _, seed := range []string{
		good,
		`{"events":[` + good + `,{"source_event_id":"e-2"}]}`,
		`{"source_system":`,
		`{"sourceSystem":"erp","completedAt":"2026-11-28T10:00:00+08:00","attributes":{"k":"v"}}`,
		`{"events":{}}`,
		`{"complaint":{"severity":"SEVERITY_NOPE"}}`,
		`{"completed_at":"10000-01-01T00:00:00Z"}`,
		`null`,
		"\xff",
	} {
		f.Add([]byte(seed))
	}
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, msg := range []proto.Message{&eventsv1.ServiceCompleted{}, &intakev1.IngestServicesRequest{}} {
			if bad := decode(body, msg); bad != nil {
				if len(bad.Violations) != 1 || bad.Violations[0].Field != "payload" || bad.Violations[0].Rule == "" {
					t.Fatalf("refusal %v: want one violation naming payload", bad)
				}
				continue
			}
			b, err := protojson.Marshal(msg)
			if err != nil {
				t.Fatalf("a decoded body does not encode: %v", err)
			}
			back := msg.ProtoReflect().New().Interface()
			if bad := decode(b, back); bad != nil || !proto.Equal(back, msg) {
				t.Fatalf("a decoded body changes through JSON: %v", bad)
			}
			events := []*eventsv1.ServiceCompleted{}
			switch m := msg.(type) {
			case *eventsv1.ServiceCompleted:
				events = append(events, m)
			case *intakev1.IngestServicesRequest:
				events = m.GetEvents()
			}
			for _, ev := range events {
				ingest.Normalize(ev)
				if err := ingest.Validate(ev, now); err != nil {
					if bad, ok := invalid.As(err); !ok || len(bad.Violations) == 0 {
						t.Fatalf("%T %v: want bad input naming fields", err, err)
					}
				}
			}
		}
	})
}
