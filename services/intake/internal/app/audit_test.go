package app_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/audit/audittest"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/services/intake/internal/app"
	"github.com/huifang/huifang/services/intake/internal/archive"
)

// auditLog returns the tenant's audit entries, oldest first, after checking
// that their chain holds.
func (b bundle) auditLog(t *testing.T, tenant string) []audit.Event {
	t.Helper()
	return audittest.Log(t, b.pool, tenant)
}

func actions(es []audit.Event) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Action+" "+e.Target.Kind+":"+e.Target.ID)
	}
	return out
}

// Every answer that shows contacts in clear is recorded in the audit log
// (one entry per customer or refused input shown), by the verified caller,
// in the transaction that read them; masked answers and failed reads are
// not recorded, and an entry holds no contact.
func TestEveryRevealIsAudited(t *testing.T) {
	b := setup(t)
	director := auth.With(b.ctx, auth.Principal{Subject: "kc-agent", Tenant: "default", Roles: []auth.Role{auth.Director}, AgentID: "d-1"})
	first, err := b.app.IngestService(b.ctx, app.IngestService{Event: event(t, repair)})
	require.NoError(t, err)
	second, err := b.app.IngestService(b.ctx, app.IngestService{Event: event(t, strings.NewReplacer(`"e-1"`, `"e-2"`, `"c-1"`, `"c-2"`, "0001", "0002").Replace(repair))})
	require.NoError(t, err)
	bad := `{"source_system":"erp","source_event_id":"e-3","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"phone":"+8613800000003"}}`
	refused, err := b.app.IngestService(b.ctx, app.IngestService{Event: event(t, bad), Source: "grpc"})
	require.NoError(t, err)
	require.NotEmpty(t, refused.RejectedID)

	_, err = b.app.GetCustomer(director, app.CustomerQuery{Tenant: "default", ID: first.CustomerID})
	require.NoError(t, err)
	require.Empty(t, b.auditLog(t, "default"), "a masked answer reveals nothing")

	_, err = b.app.GetCustomer(director, app.CustomerQuery{Tenant: "default", ID: first.CustomerID, Reveal: true})
	require.NoError(t, err)
	_, err = b.app.GetCustomer(director, app.CustomerQuery{Tenant: "default", ID: "nobody", Reveal: true})
	require.Error(t, err)
	page, more, err := b.app.ListCustomers(director, app.CustomerFilter{Tenant: "default", Reveal: true}, 1, "")
	require.NoError(t, err)
	require.Len(t, page, 1)
	require.True(t, more)
	_, err = b.app.UpdateContactPreferences(director, app.UpdateContactPreferences{Tenant: "default", CustomerID: second.CustomerID,
		Preferences: &archive.Preferences{DislikesCalls: true}, Reveal: true})
	require.NoError(t, err)
	_, err = b.app.UpdateContactPreferences(director, app.UpdateContactPreferences{Tenant: "default", CustomerID: second.CustomerID, Reveal: true})
	require.Error(t, err, "no preferences: refused")
	_, err = b.app.SetCustomerOwners(director, app.SetCustomerOwners{Tenant: "default", CustomerID: second.CustomerID, OwnerIDs: []string{"s-1", "s-2"}, Reveal: true})
	require.NoError(t, err)
	rows, _, err := b.app.ListRejected(director, app.RejectedList{Tenant: "default", Size: 10, Reveal: true})
	require.NoError(t, err)
	require.Len(t, rows, 1)
	_, err = b.app.GetRejected(director, "default", refused.RejectedID, true)
	require.NoError(t, err)

	es := b.auditLog(t, "default")
	require.Equal(t, []string{
		"customer.reveal customer:" + first.CustomerID,
		"customer.reveal customer:" + page[0].ID, // the page shown, not the row that tells a next page exists
		"customer.reveal customer:" + second.CustomerID,
		"customer.reveal customer:" + second.CustomerID,
		"rejected_event.reveal rejected_event:" + refused.RejectedID,
		"rejected_event.reveal rejected_event:" + refused.RejectedID,
	}, actions(es))
	for _, e := range es {
		require.Equal(t, audit.Actor{Subject: "kc-agent", Roles: []string{"director"}}, e.Actor)
		require.Equal(t, "{}", string(e.Detail), "no contact in the log")
	}

	// In the caller's transaction: rolled back with it.
	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	inTx := *b.app
	inTx.DB = tx
	_, err = inTx.GetCustomer(director, app.CustomerQuery{Tenant: "default", ID: first.CustomerID, Reveal: true})
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(b.ctx))
	require.Len(t, b.auditLog(t, "default"), len(es))
}

// Re-hashing contacts is recorded batch by batch (tenant "*": it spans
// every tenant), with the number of customers and the key's id, never a
// contact; a call that finds nothing to do is recorded once.
func TestRehashIsAudited(t *testing.T) {
	b := setup(t)
	operator := auth.With(b.ctx, auth.Principal{Subject: "kc-operator", Tenant: auth.AllTenants, Roles: []auth.Role{auth.PlatformOperator}})
	for _, ev := range []string{repair, strings.NewReplacer(`"e-1"`, `"e-2"`, `"c-1"`, `"c-2"`, "0001", "0002").Replace(repair)} {
		_, err := b.app.IngestService(b.ctx, app.IngestService{Event: event(t, ev)})
		require.NoError(t, err)
	}
	n, left, err := b.app.RehashContacts(operator, 1)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Zero(t, left)
	_, err = b.pool.Exec(b.ctx, `UPDATE customers SET hash_key_id = 'an-old-key'`)
	require.NoError(t, err)
	n, left, err = b.app.RehashContacts(operator, 1)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	require.Zero(t, left)

	es := b.auditLog(t, audit.AllTenants)
	require.Len(t, es, 3, "the call with nothing to do, then one entry per batch that re-hashed")
	for i, want := range []string{`{"customers":0}`, `{"customers":1}`, `{"customers":1}`} {
		require.Equal(t, "contacts.rehash", es[i].Action)
		require.Equal(t, "kc-operator", es[i].Actor.Subject)
		require.Equal(t, audit.Target{Kind: "hash_key", ID: b.app.Store.Cipher.HashKeyID()}, es[i].Target)
		require.JSONEq(t, want, string(es[i].Detail))
	}
	require.Empty(t, b.auditLog(t, "default"))
}
