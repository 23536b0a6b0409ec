package inbox_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/pkg/tenant"
)

// FuzzEventsDecode: whatever a message on a consumed subject carries, it
// decodes into the subject's event or is refused as bad input naming
// payload (dead-lettered) or subject; never a panic. A decoded event comes
// back the same through its encoding, and names a tenant (tenant.Of).
func FuzzEventsDecode(f *testing.F) {
	events := inbox.Events{
		stream.SubjectServiceCompleted: func() proto.Message { return &eventsv1.ServiceCompleted{} },
		stream.SubjectVisitDue:         func() proto.Message { return &eventsv1.VisitDue{} },
		stream.SubjectVisitLogged:      func() proto.Message { return &eventsv1.VisitLogged{} },
		stream.SubjectCustomerUpdated:  func() proto.Message { return &eventsv1.CustomerUpdated{} },
	}
	sc, _ := proto.Marshal(&eventsv1.ServiceCompleted{TenantId: "acme", EventId: "e-1"})
	due, _ := proto.Marshal(&eventsv1.VisitDue{TenantId: "acme", VisitId: "v-1"})
	f.Add(stream.SubjectServiceCompleted, sc)
	f.Add(stream.SubjectVisitDue, due)
	f.Add(stream.SubjectVisitLogged, []byte{0x0a, 0xff})
	f.Add(stream.SubjectCustomerUpdated, []byte(`{"json":"not protobuf"}`))
	f.Add("huifang.events.unknown", sc)
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		ev, err := events.Decode(subject, data)
		if err != nil {
			bad, ok := invalid.As(err)
			if !ok || len(bad.Violations) != 1 || (bad.Violations[0].Field != "payload" && bad.Violations[0].Field != "subject") {
				t.Fatalf("%T %v: want bad input naming payload or subject", err, err)
			}
			return
		}
		b, err := proto.Marshal(ev)
		if err != nil {
			t.Fatalf("a decoded event does not encode: %v", err)
		}
		back := ev.ProtoReflect().New().Interface()
		if err := inbox.Decode(b, back); err != nil || !proto.Equal(back, ev) {
			t.Fatalf("a decoded event changes through its encoding (%v)", err)
		}
		if tenant.Of(ev) == "" {
			t.Fatal("a decoded event names no tenant, not even the default")
		}
	})
}
