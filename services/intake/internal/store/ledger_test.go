package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/intake/internal/store"
)

// The ledger keeps an event once by its id; an entry that names no
// customer is attached when its visit's or complaint's link arrives, takes
// a link known before at once, and is read through the link while still
// unattached; the first link of a visit stays.
func TestLedgerLinksAndOnce(t *testing.T) {
	b := setup(t)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	add := func(e store.LedgerEntry) {
		e.Tenant = "default"
		require.NoError(t, b.st.AddLedgerEntry(b.ctx, b.pool, e))
	}
	ids := func(customer string) []string {
		es, err := b.st.Ledger(b.ctx, b.pool, store.LedgerQuery{Tenant: "default", CustomerID: customer}, 100)
		require.NoError(t, err)
		var out []string
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out
	}

	add(store.LedgerEntry{ID: "e-2", Kind: "visit_assigned", At: at(2), VisitID: "v-1", AgentID: "a-1"})
	add(store.LedgerEntry{ID: "e-2", Kind: "visit_assigned", At: at(9), VisitID: "v-1", AgentID: "a-9"}) // a resend
	require.Empty(t, ids("c-1"))
	require.NoError(t, b.st.LinkLedger(b.ctx, b.pool, "default", store.LinkVisit, "v-1", "c-1"))
	require.NoError(t, b.st.LinkLedger(b.ctx, b.pool, "default", store.LinkVisit, "v-1", "c-2"), "a later link changes nothing")
	add(store.LedgerEntry{ID: "e-1", Kind: "visit_due", At: at(1), VisitID: "v-1", CustomerID: "c-1"})
	add(store.LedgerEntry{ID: "e-3", Kind: "visit_cancelled", At: at(3), VisitID: "v-1"}) // the link is known: attached at once
	require.Equal(t, []string{"e-1", "e-2", "e-3"}, ids("c-1"))
	require.Empty(t, ids("c-2"))
	var agent string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT agent_id FROM ledger_entries WHERE id = 'e-2'`).Scan(&agent))
	require.Equal(t, "a-1", agent, "the first copy of an event stays")
	var unattached int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM ledger_entries WHERE customer_id = ''`).Scan(&unattached))
	require.Zero(t, unattached)

	// A link written without attaching (another writer's race) still reads.
	add(store.LedgerEntry{ID: "e-4", Kind: "complaint_acknowledged", At: at(4), ComplaintID: "cp-1"})
	_, err := b.pool.Exec(b.ctx, `INSERT INTO ledger_links VALUES ('default', 'complaint', 'cp-1', 'c-1')`)
	require.NoError(t, err)
	require.Equal(t, []string{"e-1", "e-2", "e-3", "e-4"}, ids("c-1"))

	// Keyset pages, both ways.
	page, err := b.st.Ledger(b.ctx, b.pool, store.LedgerQuery{Tenant: "default", CustomerID: "c-1", AfterAt: at(2), AfterID: "e-2"}, 1)
	require.NoError(t, err)
	require.Equal(t, "e-3", page[0].ID)
	page, err = b.st.Ledger(b.ctx, b.pool, store.LedgerQuery{Tenant: "default", CustomerID: "c-1", NewestFirst: true, AfterAt: at(2), AfterID: "e-2"}, 5)
	require.NoError(t, err)
	require.Len(t, page, 1)
	require.Equal(t, "e-1", page[0].ID)
}

// AddLedgerEntries stores what AddLedgerEntry stores of each entry, each
// once (an id twice among them, or stored before, changes nothing).
func TestAddLedgerEntriesAsOneByOne(t *testing.T) {
	b := setup(t)
	score, due := int32(4), t0.Add(time.Hour)
	es := []store.LedgerEntry{
		{Tenant: "default", ID: "e-1", CustomerID: "c-1", Kind: "service", At: t0, ServiceID: "s-1", ServiceType: "repair", AgentID: "st-1"},
		{Tenant: "default", ID: "e-2", CustomerID: "c-1", Kind: "visit_logged", At: t0.Add(time.Minute), VisitID: "v-1", Score: &score, DueAt: &due, Attempt: 2,
			Channel: "CHANNEL_PHONE", Disposition: "done", Status: "s", Severity: "x", TaskID: "t", ComplaintID: "cp", RecordID: "r", AppointmentID: "ap", MessageID: "m"},
	}
	require.NoError(t, b.st.AddLedgerEntry(b.ctx, b.pool, store.LedgerEntry{Tenant: "default", ID: "e-0", CustomerID: "c-1", Kind: "service", At: t0}))
	again := store.LedgerEntry{Tenant: "default", ID: "e-0", CustomerID: "c-9", Kind: "service", At: t0}
	require.NoError(t, b.st.AddLedgerEntries(b.ctx, b.pool, append(es, es[0], again)))
	got, err := b.st.Ledger(b.ctx, b.pool, store.LedgerQuery{Tenant: "default", CustomerID: "c-1"}, 10)
	require.NoError(t, err)
	require.Len(t, got, 3)
	for i, e := range es {
		g := got[i+1]
		require.Equal(t, e.At.UTC(), g.At.UTC())
		g.At, e.At = time.Time{}, time.Time{}
		if g.DueAt != nil {
			u := g.DueAt.UTC()
			g.DueAt = &u
			d := e.DueAt.UTC()
			e.DueAt = &d
		}
		require.Equal(t, e, g)
	}
	require.Error(t, b.st.AddLedgerEntries(b.ctx, b.pool, []store.LedgerEntry{{Tenant: "default", ID: "e-5", Kind: "service", At: t0}}), "an entry must name its customer")
}
