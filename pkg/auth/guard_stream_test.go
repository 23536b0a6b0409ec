package auth_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"

	"github.com/huifang/huifang/pkg/auth"
)

// fakeStream is a server stream whose one request is req.
type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
	req proto.Message
}

func (s *fakeStream) Context() context.Context { return s.ctx }
func (s *fakeStream) RecvMsg(m any) error {
	proto.Merge(m.(proto.Message), s.req)
	return nil
}

// The guard's stream interceptor authorizes a streaming call like Unary: a
// method without a rule and a caller without a role the rule names are
// refused before the handler runs; the request the handler receives
// (RecvMsg) is checked against the caller's tenant and self fields, bound
// to the caller (blank fields filled), and a refusal never reaches the
// method; the principal is in the handler's context.
func TestGuardStreamAuthorizesTheRequest(t *testing.T) {
	const method = "/huifang.dispatch.v1.DispatchService/WatchSomething"
	g := auth.NewGuard(quiet(), verifier{agentP})
	g.SetTable(auth.Table{method: listTasks, "/x.Other/Leaders": {Permission: "x", Roles: []auth.Role{auth.Leader}}})
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer x"))
	run := func(method string, req proto.Message) (*dispatchv1.ListTasksRequest, auth.Principal, bool, error) {
		var (
			got     = &dispatchv1.ListTasksRequest{}
			p       auth.Principal
			reached bool
		)
		err := g.Stream(nil, &fakeStream{ctx: ctx, req: req}, &grpc.StreamServerInfo{FullMethod: method, IsServerStream: true},
			func(_ any, ss grpc.ServerStream) error {
				if err := ss.RecvMsg(got); err != nil {
					return err
				}
				reached = true
				p, _ = auth.From(ss.Context())
				return nil
			})
		return got, p, reached, err
	}

	got, p, reached, err := run(method, &dispatchv1.ListTasksRequest{})
	require.NoError(t, err)
	require.True(t, reached)
	require.Equal(t, "acme", got.GetTenantId(), "a blank tenant is the caller's")
	require.Equal(t, "a-1", got.GetAgentId(), "a blank self field is the caller")
	require.Equal(t, agentP.Subject, p.Subject)

	for name, c := range map[string]struct {
		method string
		req    proto.Message
	}{
		"another agent":  {method, &dispatchv1.ListTasksRequest{AgentId: "a-2"}},
		"another tenant": {method, &dispatchv1.ListTasksRequest{TenantId: "globex"}},
		"no rule":        {"/x.Other/Unknown", &dispatchv1.ListTasksRequest{}},
		"no role":        {"/x.Other/Leaders", &dispatchv1.ListTasksRequest{}},
	} {
		_, _, reached, err := run(c.method, c.req)
		require.Equal(t, codes.PermissionDenied, status.Code(err), name)
		require.False(t, reached, "%s: the method never sees a refused request", name)
	}

	_, _, _, err = run("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", &dispatchv1.ListTasksRequest{AgentId: "anyone"})
	require.NoError(t, err, "reflection needs any valid token")
}
