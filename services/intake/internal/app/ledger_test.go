package app_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
)

// The ledger keeps what an event says about a contact and nothing of its
// free text; an event without a time is refused (dead-lettered), a
// CustomerUpdated that is no erasure and an event of no customer's
// contacts change nothing.
func TestApplyLedgerTx(t *testing.T) {
	b := setup(t)
	apply := func(ev proto.Message) error {
		return pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error { return b.app.ApplyLedgerTx(b.ctx, tx, ev) })
	}
	require.NoError(t, apply(&eventsv1.ComplaintResolved{EventId: "ev-1", TenantId: "default", ComplaintId: "cp-1", CustomerId: "c-1",
		VisitId: "v-1", RootCause: "刹车片磨损", Action: "更换", By: "o-1", Severity: typesv1.Severity_SEVERITY_URGENT, ResolvedAt: timestamppb.New(now)}))
	require.NoError(t, apply(&eventsv1.CustomerUpdated{EventId: "ev-2", TenantId: "default", Customer: &typesv1.Customer{Id: "c-1", NameMasked: "王*"},
		UpdatedAt: timestamppb.New(now)}))
	require.NoError(t, apply(&eventsv1.ReviewSubmitted{EventId: "ev-3", TenantId: "default", RecordId: "r-1", At: timestamppb.New(now)}))
	err := apply(&eventsv1.VisitAssigned{EventId: "ev-4", TenantId: "default", VisitId: "v-1", AgentId: "a-1"})
	bad, ok := invalid.As(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, "at", bad.Violations[0].Field)

	require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM ledger_entries`))
	require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM ledger_entries WHERE kind = 'complaint_resolved' AND customer_id = 'c-1'
		AND severity = 'urgent' AND agent_id = 'o-1' AND complaint_id = 'cp-1' AND visit_id = 'v-1'`))
	require.Zero(t, count(t, b.pool, `SELECT count(*) FROM ledger_entries r WHERE r::text ~ '(刹车|更换)'`), "no free text")
	require.Equal(t, 2, count(t, b.pool, `SELECT count(*) FROM ledger_links WHERE customer_id = 'c-1'`), "the complaint and its visit are linked")
}
