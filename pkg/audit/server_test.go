package audit_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	auditv1 "github.com/huifang/huifang/proto/huifang/audit/v1"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/servicetest"
)

// serve runs the audit API over db's log behind a service's guard, as
// app.Start does, and returns a client and the issuer of its tokens.
func serve(t *testing.T, db *pgxpool.Pool) (auditv1.AuditServiceClient, *issuer.Issuer) {
	t.Helper()
	guard, is := servicetest.Guard(t, "scheduler")
	srv := grpcserver.New(servicetest.Logger(), "", "", grpc.ChainUnaryInterceptor(guard.Unary))
	auditv1.RegisterAuditServiceServer(srv.GRPC, &audit.Server{Pool: db})
	require.NoError(t, guard.CoversServices(srv.GRPC.GetServiceInfo()), "the scheduler's table has the audit log's rules")
	conn := servicetest.Serve(t, srv)
	return auditv1.NewAuditServiceClient(conn), is
}

func as(t *testing.T, is *issuer.Issuer, tenant string, roles ...auth.Role) context.Context {
	t.Helper()
	tok := issuer.Token{Subject: "someone", Claims: auth.Claims{Tenant: tenant, AgentID: "a-1"}}
	for _, r := range roles {
		tok.Roles = append(tok.Roles, string(r))
	}
	if tenant == auth.AllTenants {
		tok = issuer.Operator()
	}
	ctx, err := is.Context(t.Context(), tok)
	require.NoError(t, err)
	return ctx
}

func requireCode(t *testing.T, want codes.Code, err error) {
	t.Helper()
	require.Equal(t, want, status.Code(err), "%v", err)
}

func TestListAuditEventsOverGRPC(t *testing.T) {
	db := pool(t)
	var es []audit.Entry
	for i := range 5 {
		es = append(es, entry("acme", "policy.update", i))
	}
	es = append(es, entry("globex", "policy.update", 9), entry(auth.AllTenants, "policy.create", 10))
	appendAll(t, db, es...)
	client, is := serve(t, db)
	auditor := as(t, is, "acme", auth.Auditor)

	resp, err := client.ListAuditEvents(auditor, &auditv1.ListAuditEventsRequest{PageSize: 3})
	require.NoError(t, err)
	require.Len(t, resp.GetEvents(), 3)
	require.NotEmpty(t, resp.GetNextPageToken())
	for i, e := range resp.GetEvents() {
		require.Equal(t, "acme", e.GetTenantId(), "the auditor's tenant only")
		require.EqualValues(t, 5-i, e.GetSeq())
	}
	first := resp.GetEvents()[0]
	require.Equal(t, "policy.update", first.GetAction())
	require.Equal(t, "policy", first.GetTargetKind())
	require.JSONEq(t, `{"version":4,"active":true}`, first.GetDetail())
	require.Len(t, first.GetHash(), 64)
	require.Equal(t, resp.GetEvents()[1].GetHash(), first.GetPrevHash())
	next, err := client.ListAuditEvents(auditor, &auditv1.ListAuditEventsRequest{PageSize: 3, PageToken: resp.GetNextPageToken()})
	require.NoError(t, err)
	require.Len(t, next.GetEvents(), 2)
	require.Empty(t, next.GetNextPageToken())
	require.EqualValues(t, 1, next.GetEvents()[1].GetSeq())

	byTarget, err := client.ListAuditEvents(auditor, &auditv1.ListAuditEventsRequest{TargetKind: "policy", TargetId: "p-1"})
	require.NoError(t, err)
	require.Len(t, byTarget.GetEvents(), 1)

	_, err = client.ListAuditEvents(auditor, &auditv1.ListAuditEventsRequest{PageSize: -1})
	requireCode(t, codes.InvalidArgument, err)
	_, err = client.ListAuditEvents(auditor, &auditv1.ListAuditEventsRequest{TenantId: "globex"})
	requireCode(t, codes.PermissionDenied, err)
	_, err = client.ListAuditEvents(as(t, is, "acme", auth.Agent), &auditv1.ListAuditEventsRequest{})
	requireCode(t, codes.PermissionDenied, err)
	_, err = client.ListAuditEvents(as(t, is, "acme", auth.TenantAdmin), &auditv1.ListAuditEventsRequest{})
	requireCode(t, codes.PermissionDenied, err)
	_, err = client.ListAuditEvents(t.Context(), &auditv1.ListAuditEventsRequest{})
	requireCode(t, codes.Unauthenticated, err)

	operator := as(t, is, auth.AllTenants)
	platform, err := client.ListAuditEvents(operator, &auditv1.ListAuditEventsRequest{})
	require.NoError(t, err)
	require.Len(t, platform.GetEvents(), 1)
	require.Equal(t, "*", platform.GetEvents()[0].GetTenantId())
	_, err = client.ListAuditEvents(operator, &auditv1.ListAuditEventsRequest{TenantId: "acme"})
	requireCode(t, codes.PermissionDenied, err)
}

func TestVerifyAuditLogOverGRPC(t *testing.T) {
	db := pool(t)
	var es []audit.Entry
	for i := range 4 {
		es = append(es, entry("acme", "policy.update", i))
	}
	appendAll(t, db, es...)
	client, is := serve(t, db)
	auditor := as(t, is, "acme", auth.Auditor)

	ok, err := client.VerifyAuditLog(auditor, &auditv1.VerifyAuditLogRequest{})
	require.NoError(t, err)
	require.True(t, ok.GetOk())
	require.EqualValues(t, 4, ok.GetEntriesChecked())
	require.EqualValues(t, 4, ok.GetLastSeq())
	require.Zero(t, ok.GetFirstBrokenSeq())

	tamper(t, db, `UPDATE audit_log SET actor = 'someone-else' WHERE tenant_id = 'acme' AND seq = 2`)
	broken, err := client.VerifyAuditLog(auditor, &auditv1.VerifyAuditLogRequest{})
	require.NoError(t, err)
	require.False(t, broken.GetOk())
	require.EqualValues(t, 2, broken.GetFirstBrokenSeq())
	require.EqualValues(t, 1, broken.GetEntriesChecked())
	require.Contains(t, broken.GetReason(), "changed")

	byOperator, err := client.VerifyAuditLog(as(t, is, auth.AllTenants), &auditv1.VerifyAuditLogRequest{TenantId: "acme"})
	require.NoError(t, err, "a platform operator checks any tenant's chain")
	require.EqualValues(t, 2, byOperator.GetFirstBrokenSeq())
	_, err = client.VerifyAuditLog(as(t, is, "acme", auth.Leader), &auditv1.VerifyAuditLogRequest{})
	requireCode(t, codes.PermissionDenied, err)
}
