package grpcapi_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/intake/internal/grpcapi"
)

// refuse ingests an event of tenant that breaks a rule (a customer without
// external_id) and returns the id of its rejected input.
func refuse(t *testing.T, srv *grpcapi.Server, tenant, sourceEventID string) string {
	t.Helper()
	_, err := srv.IngestService(context.Background(), &intakev1.IngestServiceRequest{Event: event(t,
		`{"tenant_id":"`+tenant+`","source_system":"erp","source_event_id":"`+sourceEventID+`","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"phone":"+8613800000002"}}`)})
	require.Equal(t, []string{"customer.external_id"}, violationFields(t, err))
	var id string
	require.NoError(t, srv.App.DB.QueryRow(context.Background(),
		`SELECT id FROM rejected_events WHERE tenant_id = $1 ORDER BY received_at DESC, id DESC LIMIT 1`, tenant).Scan(&id))
	return id
}

// fixedFor is the refused event of refuse, fixed, naming tenant (blank: none).
func fixedFor(t *testing.T, tenant, sourceEventID string) *intakev1.ReplayRejectedEventRequest {
	t.Helper()
	tenantField := ""
	if tenant != "" {
		tenantField = `"tenant_id":"` + tenant + `",`
	}
	return &intakev1.ReplayRejectedEventRequest{Fixed: event(t, `{`+tenantField+`"source_system":"erp","source_event_id":"`+sourceEventID+`","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c-2","phone":"+8613800000002"}}`)}
}

// A replay keeps the tenant of the input refused: a tenant admin of acme
// neither replays globex's refused inputs (they are not found in acme; naming
// globex is refused) nor moves one of acme's into globex through `fixed`
// (refused by the guard, and by intake itself for a caller the guard let
// through); a fixed event naming no tenant is stored in acme.
func TestReplayKeepsTheRejectedInputsTenant(t *testing.T) {
	_, srv := setup(t)
	guard, is := servicetest.Guard(t, "intake")
	acmeReject, globexReject := refuse(t, srv, "acme", "e-a"), refuse(t, srv, "globex", "e-g")

	admin, err := is.Mint(issuer.Token{Subject: "admin-acme", Claims: auth.Claims{Tenant: "acme", Roles: []string{string(auth.TenantAdmin)}}})
	require.NoError(t, err)
	asAdmin := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+admin))
	info := &grpc.UnaryServerInfo{FullMethod: intakev1.IntakeService_ReplayRejectedEvent_FullMethodName}
	replay := func(ctx context.Context, req *intakev1.ReplayRejectedEventRequest) error {
		_, err := guard.Unary(ctx, req, info, func(ctx context.Context, req any) (any, error) {
			return srv.ReplayRejectedEvent(ctx, req.(*intakev1.ReplayRejectedEventRequest))
		})
		return err
	}

	// globex's refused input, as acme's admin.
	require.Equal(t, codes.NotFound, status.Code(replay(asAdmin, &intakev1.ReplayRejectedEventRequest{Id: globexReject})))
	require.Equal(t, codes.PermissionDenied, status.Code(replay(asAdmin, &intakev1.ReplayRejectedEventRequest{TenantId: "globex", Id: globexReject})))
	req := fixedFor(t, "", "e-g")
	req.Id = globexReject
	require.Equal(t, codes.NotFound, status.Code(replay(asAdmin, req)))

	// acme's refused input, fixed into globex.
	req = fixedFor(t, "globex", "e-a")
	req.Id = acmeReject
	require.Equal(t, codes.PermissionDenied, status.Code(replay(asAdmin, req)), "the guard binds fixed.tenant_id")
	req = fixedFor(t, "globex", "e-a")
	req.Id, req.TenantId = acmeReject, "acme"
	_, err = srv.ReplayRejectedEvent(context.Background(), req)
	require.Equal(t, []string{"fixed.tenant_id"}, violationFields(t, err), "intake itself keeps the tenant")
	require.Zero(t, count(t, srv, `SELECT count(*) FROM services`), "nothing stored anywhere")
	require.Zero(t, count(t, srv, `SELECT count(*) FROM rejected_events WHERE replayed_at IS NOT NULL`))

	// Fixed without a tenant: stored in acme.
	req = fixedFor(t, "", "e-a")
	req.Id = acmeReject
	require.NoError(t, replay(asAdmin, req))
	require.Equal(t, 1, count(t, srv, `SELECT count(*) FROM services WHERE tenant_id = 'acme'`))
	require.Zero(t, count(t, srv, `SELECT count(*) FROM services WHERE tenant_id <> 'acme'`))
}

// A stored payload that names another tenant than the one it was refused
// in (a malformed tenant id, kept under the default tenant) is not replayed
// as it is: refused, naming payload.tenant_id.
func TestReplayOfAPayloadNamingAnotherTenant(t *testing.T) {
	ctx, srv := setup(t)
	_, err := srv.IngestService(ctx, &intakev1.IngestServiceRequest{Event: event(t,
		`{"tenant_id":"ACME","source_system":"erp","source_event_id":"e-1","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c-1","phone":"+8613800000001"}}`)})
	require.Equal(t, []string{"tenant_id"}, violationFields(t, err))
	var id, tenant string
	require.NoError(t, srv.App.DB.QueryRow(ctx, `SELECT id, tenant_id FROM rejected_events`).Scan(&id, &tenant))
	require.Equal(t, "default", tenant, "a malformed tenant is kept under the default one")

	_, err = srv.ReplayRejectedEvent(ctx, &intakev1.ReplayRejectedEventRequest{Id: id})
	require.Equal(t, []string{"payload.tenant_id"}, violationFields(t, err))
	require.Zero(t, count(t, srv, `SELECT count(*) FROM services`))
}
