package e2e

import (
	"bytes"
	"errors"
	"time"

	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/stream"
)

// TestErasedCustomerIsFoundNowhere: a customer reported by an upstream
// system through the NATS ingress, with a task claimed in dispatch and a
// record whose free text names them, is erased by the tenant admin
// (EraseCustomer). Afterwards its phone number
// and name are in no table of any schema, no message of any stream (the
// ingress holds only what is not handled yet) and no service's log;
// dispatch and the scheduler dropped even the masked forms, the task is
// withdrawn, and the service is still counted.
func TestErasedCustomerIsFoundNowhere(t *testing.T) {
	s := setup(t, nil)
	s.prepare()
	s.publish(ingress("erase-1", "repair", "c-erase", "欧阳娜娜", "+8613912345678", time.Now().UTC()))
	task := s.claim()
	require.Equal(t, "欧***", task.GetCustomer().GetNameMasked())
	require.Equal(t, "*******5678", task.GetCustomer().GetPhoneMasked())
	customerID := task.GetCustomer().GetId()
	// The agent typed the customer's name and number into the record and
	// the problem: free text that erasure must reach too.
	s.logVisit(&feedbackv1.LogVisitRequest{TenantId: tenant, VisitId: task.GetVisitId(), AgentId: agent,
		Answers:  []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_UNSATISFIED, Comment: "欧阳娜娜 was upset"}},
		Problems: []*typesv1.Problem{{Category: "service_quality", Description: "call 欧阳娜娜 back on 13912345678"}},
		Comments: "欧阳娜娜, +8613912345678, asked for a manager"})

	// Two refused inputs: one naming the customer (its contacts sealed
	// under the tenant's key, not the customer's), one someone else's.
	s.publish(ingress("erase-2", "no_such_type", "c-erase", "欧阳娜娜", "+8613912345678", time.Now().UTC()))
	s.publish(ingress("erase-3", "no_such_type", "c-keep", "李四", "+8613700001111", time.Now().UTC()))
	admin, err := s.issuer.Context(t.Context(), issuer.Staff(tenant, "adm"))
	require.NoError(t, err)
	refused := func() (map[string]bool, bool, error) {
		resp, err := s.intake.ListRejectedEvents(admin, &intakev1.ListRejectedEventsRequest{TenantId: tenant})
		got := map[string]bool{}
		for _, r := range resp.GetRejectedEvents() {
			for _, id := range []string{"erase-2", "erase-3"} {
				got[id] = got[id] || bytes.Contains(r.GetPayload(), []byte(id))
			}
		}
		return got, err == nil, err
	}
	waitFor(t, taskDeadline, "intake to refuse both inputs", func() (bool, bool, error) {
		got, _, err := refused()
		return true, got["erase-2"] && got["erase-3"], err
	})

	erased, err := s.intake.EraseCustomer(admin, &intakev1.EraseCustomerRequest{TenantId: tenant, CustomerId: customerID,
		Reason: "the customer's request of today"})
	require.NoError(t, err)
	require.True(t, erased.GetErasedNow())

	// Dispatch hears it: the task is withdrawn and keeps no masked contact.
	waitFor(t, taskDeadline, "dispatch to drop the erased customer's task", func() (bool, bool, error) {
		var status, customer string
		err := s.db.QueryRow(t.Context(), `SELECT status, customer::text FROM dispatch.tasks WHERE id = $1`, task.GetId()).Scan(&status, &customer)
		return true, err == nil && status != "claimed" && !bytes.Contains([]byte(customer), []byte("5678")), err
	})
	asAgent, err := s.issuer.Context(t.Context(), issuer.Staff(tenant, agent))
	require.NoError(t, err)
	_, err = s.dispatch.RevealTaskContact(asAgent, &dispatchv1.RevealTaskContactRequest{TenantId: tenant, TaskId: task.GetId(), LeaseToken: task.GetLeaseToken()})
	require.Error(t, err, "nothing to dial any more")
	waitFor(t, taskDeadline, "the scheduler to drop the masked contact", func() (bool, bool, error) {
		var n int
		err := s.db.QueryRow(t.Context(), `SELECT count(*) FROM scheduler.planned_visits WHERE customer_id = $1 AND customer::text LIKE '%5678%'`, customerID).Scan(&n)
		return true, err == nil && n == 0, err
	})

	// Feedback hears it: the free text about the customer is redacted.
	waitFor(t, taskDeadline, "feedback to redact the erased customer's free text", func() (bool, bool, error) {
		var n int
		err := s.db.QueryRow(t.Context(), `SELECT count(*) FROM feedback.audit_log WHERE action = 'customer.redact' AND target_id = $1`, customerID).Scan(&n)
		return true, err == nil && n == 1, err
	})

	// The clear contacts are nowhere; the masked forms stay only in the
	// events already published (and intake's outbox until it is pruned),
	// as every event carries them.
	s.checkNoPersonalData("13912345678", "欧阳娜娜")
	for _, name := range []string{stream.IngressStream, stream.EventsStream, stream.DLQStream} {
		for _, secret := range []string{"13912345678", "欧阳娜娜"} {
			require.False(t, s.streamHolds(name, []byte(secret)), "%s holds %q", name, secret)
		}
	}
	left, _, err := refused()
	require.NoError(t, err)
	require.Equal(t, map[string]bool{"erase-2": false, "erase-3": true}, left, "the refused input naming the customer went with the erasure, the other stayed")

	var services int
	require.NoError(t, s.db.QueryRow(t.Context(), `SELECT count(*) FROM intake.services WHERE customer_id = $1`, customerID).Scan(&services))
	require.Equal(t, 1, services, "the service is still counted")
}

// streamHolds reads every message a stream still holds and tells whether
// one contains secret.
func (s *system) streamHolds(name string, secret []byte) bool {
	t := s.t
	str, err := s.js.Stream(t.Context(), name)
	require.NoError(t, err)
	info, err := str.Info(t.Context())
	require.NoError(t, err)
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		msg, err := str.GetMsg(t.Context(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		require.NoError(t, err)
		if bytes.Contains(msg.Data, secret) {
			return true
		}
		for _, vs := range msg.Header {
			for _, v := range vs {
				if bytes.Contains([]byte(v), secret) {
					return true
				}
			}
		}
	}
	return false
}
