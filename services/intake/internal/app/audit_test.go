package app_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/audit/audittest"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/intake/internal/app"
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

// Answers show contacts masked and write nothing; every reveal and every
// lookup by phone is written to the audit log by the verified caller, with
// its purpose and fields and never a contact, in the transaction that read
// the customer (rolled back with it); a reveal out of the caller's scope is
// refused and written as a refusal; each needs a purpose and is held to the
// caller's rate.
func TestEveryRevealIsAudited(t *testing.T) {
	b := setup(t)
	director := auth.With(b.ctx, auth.Principal{Subject: "kc-director", Tenant: "default", Roles: []auth.Role{auth.Director}, AgentID: "d-1"})
	leader := auth.With(b.ctx, auth.Principal{Subject: "kc-leader", Tenant: "default", Roles: []auth.Role{auth.Leader}, AgentID: "l-1", OrgUnits: []string{"elsewhere"}})
	dispatch := auth.With(b.ctx, auth.Principal{Subject: "service-dispatch", Tenant: auth.AllTenants, Roles: []auth.Role{auth.Service}, ServiceName: app.Dispatch})
	first, err := b.app.IngestService(b.ctx, app.IngestService{Event: event(t, repair)})
	require.NoError(t, err)

	// Masked answers record nothing.
	c, err := b.app.GetCustomer(director, app.CustomerQuery{Tenant: "default", ID: first.CustomerID})
	require.NoError(t, err)
	require.Equal(t, "*******0001", c.Proto().GetPhoneMasked())
	require.Empty(t, c.Proto().GetPhone(), "answers and events carry no clear contact")
	_, _, err = b.app.ListCustomers(director, app.CustomerFilter{Tenant: "default"}, 10, "")
	require.NoError(t, err)
	require.Empty(t, b.auditLog(t, "default"), "a masked answer reveals nothing")

	// A reveal needs a purpose and at least one known field.
	_, err = b.app.RevealContact(director, app.RevealContact{Tenant: "default", CustomerID: first.CustomerID, Fields: []string{app.FieldPhone}})
	requireViolation(t, err, "purpose")
	_, err = b.app.RevealContact(director, app.RevealContact{Tenant: "default", CustomerID: first.CustomerID, Fields: []string{"address"}, Purpose: "call back"})
	requireViolation(t, err, "fields")
	_, err = b.app.RevealContact(dispatch, app.RevealContact{Tenant: "default", CustomerID: first.CustomerID, Fields: []string{app.FieldPhone}, Purpose: "sms"})
	requireViolation(t, err, "on_behalf_of")
	require.Empty(t, b.auditLog(t, "default"), "refused input reveals nothing")

	r, err := b.app.RevealContact(director, app.RevealContact{Tenant: "default", CustomerID: first.CustomerID, Fields: []string{app.FieldPhone}, Purpose: "call back about the repair"})
	require.NoError(t, err)
	require.Equal(t, "+8613800000001", r.Phone)
	require.Empty(t, r.Name, "only the fields asked")
	r, err = b.app.RevealContact(dispatch, app.RevealContact{Tenant: "default", CustomerID: first.CustomerID, Fields: []string{app.FieldName, app.FieldPhone},
		Purpose: "automatic message", OnBehalfOf: "message:m-1"})
	require.NoError(t, err)
	require.Equal(t, "+8613800000001", r.Phone)
	_, err = b.app.RevealContact(leader, app.RevealContact{Tenant: "default", CustomerID: first.CustomerID, Fields: []string{app.FieldPhone}, Purpose: "call back"})
	var denied *auth.Denied
	require.ErrorAs(t, err, &denied, "a leader of another org unit")

	// Lookups by phone: a purpose, and an entry found or not.
	_, err = b.app.GetCustomer(director, app.CustomerQuery{Tenant: "default", Phone: "+8613800000001"})
	requireViolation(t, err, "purpose")
	_, err = b.app.GetCustomer(director, app.CustomerQuery{Tenant: "default", Phone: "+8613800000001", Purpose: "caller id on an inbound call"})
	require.NoError(t, err)
	_, err = b.app.GetCustomer(director, app.CustomerQuery{Tenant: "default", Phone: "+8613800009999", Purpose: "caller id on an inbound call"})
	require.ErrorIs(t, err, app.ErrNotFound)

	es := b.auditLog(t, "default")
	require.Equal(t, []string{
		"contact.reveal customer:" + first.CustomerID,
		"contact.reveal customer:" + first.CustomerID,
		"contact.reveal_refused customer:" + first.CustomerID,
		"customer.lookup customer:" + first.CustomerID,
		"customer.lookup customer:",
	}, actions(es))
	require.Equal(t, audit.Actor{Subject: "kc-director", Roles: []string{"director"}}, es[0].Actor)
	require.JSONEq(t, `{"fields":["phone"],"purpose":"call back about the repair"}`, string(es[0].Detail))
	require.Equal(t, audit.Actor{Subject: "service-dispatch", Roles: []string{"service"}}, es[1].Actor)
	require.JSONEq(t, `{"fields":["name","phone"],"purpose":"automatic message","on_behalf_of":"message:m-1"}`, string(es[1].Detail))
	require.JSONEq(t, `{"by":"phone","phone":"*******9999","purpose":"caller id on an inbound call","outcome":"not_found"}`, string(es[4].Detail))
	for _, e := range es {
		require.NotContains(t, string(e.Detail), "13800000001", "no contact in the log")
	}

	// In the caller's transaction: rolled back with it.
	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	inTx := *b.app
	inTx.DB = tx
	_, err = inTx.RevealContact(director, app.RevealContact{Tenant: "default", CustomerID: first.CustomerID, Fields: []string{app.FieldEmail}, Purpose: "send the invoice"})
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(b.ctx))
	require.Len(t, b.auditLog(t, "default"), len(es))

	// The caller's rate: a burst of two, then ResourceExhausted.
	limited := *b.app
	limited.Reveals = app.Reveals{Staff: auth.NewLimiter(auth.RateLimit{Rate: 1.0 / 3600, Burst: 2}, nil)}
	for range 2 {
		_, err = limited.RevealContact(director, app.RevealContact{Tenant: "default", CustomerID: first.CustomerID, Fields: []string{app.FieldPhone}, Purpose: "call back"})
		require.NoError(t, err)
	}
	_, err = limited.RevealContact(director, app.RevealContact{Tenant: "default", CustomerID: first.CustomerID, Fields: []string{app.FieldPhone}, Purpose: "call back"})
	require.Equal(t, codes.ResourceExhausted, status.Code(err))
	_, err = limited.GetCustomer(director, app.CustomerQuery{Tenant: "default", Phone: "+8613800000001", Purpose: "caller id"})
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "lookups by phone count against the same rate")
}

func requireViolation(t *testing.T, err error, field string) {
	t.Helper()
	var l *invalid.Error
	require.ErrorAs(t, err, &l)
	var fields []string
	for _, v := range l.Violations {
		fields = append(fields, v.Field)
	}
	require.Contains(t, fields, field)
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
