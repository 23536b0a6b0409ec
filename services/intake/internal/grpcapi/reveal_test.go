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
)

// Through the guard, as intake serves it: a director reveals a phone for a
// purpose, and the audit log has the entry; an agent (no contacts.reveal)
// is refused, and the refusal has its entry too; so has a leader refused
// for a customer outside its org units. No entry holds the number.
func TestRevealThroughTheGuardIsAudited(t *testing.T) {
	_, srv := setup(t)
	guard, is := servicetest.Guard(t, "intake")
	guard.OnRefused(srv.RefusedCall)
	r := ingest(t, srv, `{"source_system":"erp","source_event_id":"e-1","service_type":"repair","completed_at":"2026-11-20T10:00:00Z","org_unit":"north",
		"customer":{"external_id":"c-1","name":"王芳","phone":"+8613800138000"}}`)

	as := func(tok issuer.Token) context.Context {
		raw, err := is.Mint(tok)
		require.NoError(t, err)
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+raw))
	}
	info := &grpc.UnaryServerInfo{FullMethod: intakev1.IntakeService_RevealContact_FullMethodName}
	reveal := func(ctx context.Context) (*intakev1.RevealContactResponse, error) {
		resp, err := guard.Unary(ctx, &intakev1.RevealContactRequest{CustomerId: r.CustomerId,
			Fields: []intakev1.ContactField{intakev1.ContactField_CONTACT_FIELD_PHONE}, Purpose: "call back about the repair"}, info,
			func(ctx context.Context, req any) (any, error) {
				return srv.RevealContact(ctx, req.(*intakev1.RevealContactRequest))
			})
		if err != nil {
			return nil, err
		}
		return resp.(*intakev1.RevealContactResponse), nil
	}

	got, err := reveal(as(issuer.Token{Subject: "dir-1", Claims: auth.Claims{Tenant: "default", Roles: []string{"director"}}}))
	require.NoError(t, err)
	require.Equal(t, "+8613800138000", got.GetPhone())
	_, err = reveal(as(issuer.Token{Subject: "agent-1", Claims: auth.Claims{Tenant: "default", Roles: []string{"agent"}, AgentID: "a-1"}}))
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	_, err = reveal(as(issuer.Token{Subject: "leader-1", Claims: auth.Claims{Tenant: "default", Roles: []string{"leader"}, AgentID: "l-1", OrgUnits: []string{"south"}}}))
	require.Error(t, err)

	rows, err := srv.App.DB.Query(context.Background(), `SELECT actor, action, detail::text FROM audit_log WHERE tenant_id = 'default' ORDER BY seq`)
	require.NoError(t, err)
	defer rows.Close()
	var got3 [][3]string
	for rows.Next() {
		var e [3]string
		require.NoError(t, rows.Scan(&e[0], &e[1], &e[2]))
		require.NotContains(t, e[2], "13800138000")
		got3 = append(got3, e)
	}
	require.NoError(t, rows.Err())
	require.Len(t, got3, 3)
	require.Equal(t, [2]string{"dir-1", "contact.reveal"}, [2]string{got3[0][0], got3[0][1]})
	require.Equal(t, [2]string{"agent-1", "contact.reveal_refused"}, [2]string{got3[1][0], got3[1][1]})
	require.Equal(t, [2]string{"leader-1", "contact.reveal_refused"}, [2]string{got3[2][0], got3[2][1]})
}
