package app

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

// A batch holds its messages' visits until its commit: a visit of a key it
// holds already is not new, a change planning makes to a held visit is
// made where it is held, and what a message that fails changed is undone
// (its visits no longer held, an earlier message's visit as before), so
// that the messages after it see the batch as if it had not run.
func TestBatchHeldVisitsAndAFailedMessage(t *testing.T) {
	k := store.CustomerKey{Tenant: "t", Customer: "cu-1"}
	b := &Batch{held: map[string]heldVisit{}, heldFor: map[store.CustomerKey][]string{}, heldKeys: map[visitKey]bool{}}
	ctx := WithBatch(context.Background(), b)
	planned := func(id, service string) visit.Visit {
		return visit.Visit{ID: id, Tenant: "t", CustomerID: "cu-1", ServiceID: service, Status: visit.StatusPlanned,
			Visit: policy.Visit{PolicyID: "p"}}
	}
	ids := func(vs []visit.Visit) []string {
		out := []string{}
		for _, v := range vs {
			out = append(out, v.ID+" "+v.Status)
		}
		return out
	}

	w1 := &planningWrite{}
	require.True(t, b.hold(w1, planned("v-1", "s-1")))
	require.False(t, b.hold(w1, planned("v-1b", "s-1")), "the same service again: not new")
	require.Equal(t, []string{"v-1 planned"}, ids(b.heldPending(k)))

	// The second message cancels v-1 and holds v-2, then fails.
	mark := len(b.undo)
	w2 := &planningWrite{}
	require.True(t, b.hold(w2, planned("v-2", "s-2")))
	cancelled := b.heldPending(k)[0]
	cancelled.Status = visit.StatusCancelled
	require.NoError(t, saveVisits(ctx, nil, []visit.Visit{cancelled}), "a held visit is changed where it is held: no statement")
	require.Equal(t, "cancelled", w1.visits[0].Status)
	require.Equal(t, []string{"v-2 planned"}, ids(b.heldPending(k)))
	b.rollback(mark)

	require.Equal(t, []string{"v-1 planned"}, ids(b.heldPending(k)), "the failed message's changes undone")
	require.Empty(t, w2.visits)
	require.Len(t, w1.visits, 1)
	require.NotContains(t, b.held, "v-2")
	w3 := &planningWrite{}
	require.True(t, b.hold(w3, planned("v-3", "s-2")), "s-2's visit is new again")
}
