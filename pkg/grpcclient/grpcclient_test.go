package grpcclient_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/grpcclient"
	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/servicetest"
)

// seen records the principal of the one call it serves.
type seen struct {
	intakev1.UnimplementedIntakeServiceServer
	got chan auth.Principal
}

func (s *seen) RevealContact(ctx context.Context, _ *intakev1.RevealContactRequest) (*intakev1.RevealContactResponse, error) {
	p, _ := auth.From(ctx)
	s.got <- p
	return &intakev1.RevealContactResponse{}, nil
}

// A service calls another on its own account: a client-credentials token of
// the issuer (token endpoint from discovery), which the callee's guard
// takes as the service role; a wrong secret gets no token and no call.
func TestServiceCallsWithItsOwnToken(t *testing.T) {
	guard, is := servicetest.Guard(t, "intake")
	is.AddClient("dispatch", "s3cret", issuer.ServiceAccount("dispatch"))
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(guard.Unary))
	svc := &seen{got: make(chan auth.Principal, 1)}
	intakev1.RegisterIntakeServiceServer(srv, svc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	call := func(secret string) error {
		conn, err := grpcclient.Dial(grpcclient.Config{Addr: lis.Addr().String(), ClientID: "dispatch", ClientSecret: secret, Issuer: is.URL()})
		require.NoError(t, err)
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err = intakev1.NewIntakeServiceClient(conn).RevealContact(ctx, &intakev1.RevealContactRequest{TenantId: "acme"})
		return err
	}
	require.NoError(t, call("s3cret"))
	p := <-svc.got
	require.Equal(t, "dispatch", p.ServiceName)
	require.Equal(t, []auth.Role{auth.Service}, p.Roles)
	require.Equal(t, auth.AllTenants, p.Tenant)

	err = call("wrong")
	require.Error(t, err)
	require.NotEqual(t, codes.OK, status.Code(err))
	require.Contains(t, err.Error(), "invalid_client")

	_, err = grpcclient.Dial(grpcclient.Config{Addr: lis.Addr().String(), ClientID: "dispatch", Issuer: is.URL()})
	require.ErrorContains(t, err, "AUTH_CLIENT_SECRET")
}
