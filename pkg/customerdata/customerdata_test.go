package customerdata_test

import (
	"context"
	"encoding/json"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	privacyv1 "github.com/huifang/huifang/proto/huifang/privacy/v1"

	"github.com/huifang/huifang/pkg/audit/audittest"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/customerdata"
	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/servicetest"
)

// schema is a service's schema in small: a table found by its customer_id,
// one linked to it through a visit (Related), one of key material (Skip),
// and a column of ciphertext (Omit).
var schema = fstest.MapFS{"001_init.sql": {Data: []byte(`
CREATE TABLE visits (id text PRIMARY KEY, tenant_id text NOT NULL, customer_id text NOT NULL, note text NOT NULL, sealed bytea);
CREATE TABLE notes (visit_id text NOT NULL, tenant_id text NOT NULL, body text NOT NULL);
CREATE TABLE keys (tenant_id text NOT NULL, customer_id text NOT NULL, wrapped bytea NOT NULL);
INSERT INTO visits VALUES ('v1', 't1', 'c1', 'first', '\x01'), ('v2', 't1', 'c2', 'another customer', NULL),
  ('v3', 't2', 'c1', 'the same id in another tenant', NULL);
INSERT INTO notes VALUES ('v1', 't1', 'about v1'), ('v2', 't1', 'about v2'), ('v3', 't2', 'about v3');
INSERT INTO keys VALUES ('t1', 'c1', '\x02');
`)}}

func source(pool *pgxpool.Pool) customerdata.Source {
	return customerdata.Source{Service: "scheduler", Pool: pool,
		Related: map[string]string{"notes": `SELECT * FROM notes WHERE tenant_id = $1 AND visit_id IN (SELECT id FROM visits WHERE tenant_id = $1 AND customer_id = $2)`},
		Skip:    []string{"keys"}, Omit: []string{"visits.sealed"}}
}

func TestExportReadsEveryTableOfTheCustomerAndNothingElse(t *testing.T) {
	pool := servicetest.Pool(t, "scheduler", schema)
	data, err := source(pool).Export(t.Context(), "t1", "c1")
	require.NoError(t, err)
	b, err := json.Marshal(data)
	require.NoError(t, err)
	got := map[string][]map[string]any{}
	require.NoError(t, json.Unmarshal(b, &got))
	require.Equal(t, []map[string]any{{"id": "v1", "tenant_id": "t1", "customer_id": "c1", "note": "first"}}, got["visits"], "without the omitted column")
	require.Equal(t, []map[string]any{{"visit_id": "v1", "tenant_id": "t1", "body": "about v1"}}, got["notes"])
	require.NotContains(t, got, "keys", "skipped")
	require.NotContains(t, got, "audit_log", "no entry about the customer yet")

	// A table added later with a customer_id but no tenant_id is refused:
	// a customer id alone must not select across tenants.
	_, err = pool.Exec(t.Context(), `CREATE TABLE loose (customer_id text)`)
	require.NoError(t, err)
	_, err = source(pool).Export(t.Context(), "t1", "c1")
	require.ErrorIs(t, err, customerdata.ErrUnscoped)
}

// serve runs the API over pool behind the scheduler's guard, as app.Start does.
func serve(t *testing.T, pool *pgxpool.Pool) (privacyv1.CustomerDataServiceClient, *issuer.Issuer) {
	t.Helper()
	guard, is := servicetest.Guard(t, "scheduler")
	srv := grpcserver.New(servicetest.Logger(), "", "", grpc.ChainUnaryInterceptor(guard.Unary))
	privacyv1.RegisterCustomerDataServiceServer(srv.GRPC, &customerdata.Server{Source: source(pool)})
	require.NoError(t, guard.CoversServices(srv.GRPC.GetServiceInfo()), "the scheduler's table has the customer-data rules")
	conn := servicetest.Serve(t, srv)
	return privacyv1.NewCustomerDataServiceClient(conn), is
}

func TestExportIsForTheAdminAndIntakeAndAudited(t *testing.T) {
	pool := servicetest.Pool(t, "scheduler", schema)
	client, is := serve(t, pool)
	as := func(tok issuer.Token) context.Context {
		ctx, err := is.Context(t.Context(), tok)
		require.NoError(t, err)
		return ctx
	}
	admin := as(issuer.Token{Subject: "dpo", Claims: auth.Claims{Tenant: "t1", Roles: []string{string(auth.TenantAdmin)}}})
	const reason = "access request, ticket 4711"

	resp, err := client.ExportCustomerData(admin, &privacyv1.ExportCustomerDataRequest{CustomerId: "c1", Reason: reason})
	require.NoError(t, err)
	require.Equal(t, "scheduler", resp.GetService())
	b, err := protojson.Marshal(resp.GetData())
	require.NoError(t, err)
	require.JSONEq(t, `{"visits": [{"id": "v1", "tenant_id": "t1", "customer_id": "c1", "note": "first"}],
  "notes": [{"visit_id": "v1", "tenant_id": "t1", "body": "about v1"}]}`, string(b))
	log := audittest.Log(t, pool, "t1")
	require.Len(t, log, 1)
	require.Equal(t, customerdata.Action, log[0].Action)
	require.Equal(t, "dpo", log[0].Actor.Subject)
	require.JSONEq(t, `{"reason": "access request, ticket 4711", "rows": {"visits": 1, "notes": 1}}`, string(log[0].Detail))

	// The next export holds the first one's audit entry: who saw the data.
	resp, err = client.ExportCustomerData(admin, &privacyv1.ExportCustomerDataRequest{CustomerId: "c1", Reason: reason})
	require.NoError(t, err)
	require.Len(t, resp.GetData().GetFields()["audit_log"].GetListValue().GetValues(), 1)

	code := func(err error) codes.Code { return status.Code(err) }
	_, err = client.ExportCustomerData(admin, &privacyv1.ExportCustomerDataRequest{CustomerId: "c1"})
	require.Equal(t, codes.InvalidArgument, code(err), "no reason: %v", err)
	_, err = client.ExportCustomerData(admin, &privacyv1.ExportCustomerDataRequest{TenantId: "t2", CustomerId: "c1", Reason: reason})
	require.Equal(t, codes.PermissionDenied, code(err), "another tenant: %v", err)
	agent := as(issuer.Token{Subject: "li", Claims: auth.Claims{Tenant: "t1", Roles: []string{string(auth.Agent)}, AgentID: "a-1"}})
	_, err = client.ExportCustomerData(agent, &privacyv1.ExportCustomerDataRequest{CustomerId: "c1", Reason: reason})
	require.Equal(t, codes.PermissionDenied, code(err), "an agent: %v", err)
	_, err = client.ExportCustomerData(as(issuer.ServiceAccount("dispatch")), &privacyv1.ExportCustomerDataRequest{TenantId: "t1", CustomerId: "c1", Reason: reason, OnBehalfOf: "dpo"})
	require.Equal(t, codes.PermissionDenied, code(err), "a service other than intake: %v", err)
	intake := as(issuer.ServiceAccount("intake"))
	_, err = client.ExportCustomerData(intake, &privacyv1.ExportCustomerDataRequest{TenantId: "t1", CustomerId: "c1", Reason: reason})
	require.Equal(t, codes.InvalidArgument, code(err), "intake names the person: %v", err)
	_, err = client.ExportCustomerData(intake, &privacyv1.ExportCustomerDataRequest{TenantId: "t2", CustomerId: "c1", Reason: reason, OnBehalfOf: "dpo-2"})
	require.NoError(t, err)
	log = audittest.Log(t, pool, "t2")
	require.Len(t, log, 1)
	require.Equal(t, "service-intake", log[0].Actor.Subject)
	require.Contains(t, string(log[0].Detail), `"on_behalf_of":"dpo-2"`)
	require.Len(t, audittest.Log(t, pool, "t1"), 2, "refusals exported nothing")
}
