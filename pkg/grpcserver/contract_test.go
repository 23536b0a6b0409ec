package grpcserver_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"

	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/servicetest"
)

// fakeIntake counts the calls that reach it: a refused request must not.
type fakeIntake struct {
	intakev1.UnimplementedIntakeServiceServer
	calls atomic.Int32
}

func (f *fakeIntake) GetRejectedEvent(_ context.Context, req *intakev1.GetRejectedEventRequest) (*intakev1.GetRejectedEventResponse, error) {
	f.calls.Add(1)
	return &intakev1.GetRejectedEventResponse{RejectedEvent: &intakev1.RejectedEvent{Id: req.GetId(), TenantId: req.GetTenantId()}}, nil
}

func (f *fakeIntake) ListCustomers(context.Context, *intakev1.ListCustomersRequest) (*intakev1.ListCustomersResponse, error) {
	f.calls.Add(1)
	return &intakev1.ListCustomersResponse{}, nil
}

// guarded is a server as app.Start builds it (the guard of intake's
// permission table, then the request rules) with a fake IntakeService.
func guarded(t *testing.T) (*grpcserver.Server, *fakeIntake, *issuer.Issuer) {
	t.Helper()
	guard, is := servicetest.Guard(t, "intake")
	srv := grpcserver.New(quiet(), "127.0.0.1:0", "127.0.0.1:0",
		grpc.ChainUnaryInterceptor(guard.Unary), grpc.ChainStreamInterceptor(guard.Stream))
	f := &fakeIntake{}
	intakev1.RegisterIntakeServiceServer(srv.GRPC, f)
	return srv, f, is
}

func fieldViolations(t *testing.T, err error) map[string]string {
	t.Helper()
	st := status.Convert(err)
	require.Equal(t, codes.InvalidArgument, st.Code(), "%v", err)
	out := map[string]string{}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out[v.GetField()] = v.GetDescription()
			}
		}
	}
	return out
}

// A request that breaks a rule of its .proto ((buf.validate.field)) is
// refused InvalidArgument with a field violation naming the field and the
// rule before the handler runs, but only once the guard let the caller in:
// an unknown caller learns Unauthenticated and nothing about the request.
func TestRequestRulesRefuseUnaryCallsBeforeTheHandler(t *testing.T) {
	srv, f, is := guarded(t)
	client := intakev1.NewIntakeServiceClient(servicetest.Serve(t, srv))

	_, err := client.GetRejectedEvent(t.Context(), &intakev1.GetRejectedEventRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "no token: the guard answers first: %v", err)

	ctx, err := is.Context(t.Context(), issuer.Staff("default", "admin-1"))
	require.NoError(t, err)
	_, err = client.GetRejectedEvent(ctx, &intakev1.GetRejectedEventRequest{})
	require.Equal(t, map[string]string{"id": "is required [required]"}, fieldViolations(t, err))
	_, err = client.ListCustomers(ctx, &intakev1.ListCustomersRequest{PageSize: 501})
	bad := fieldViolations(t, err)
	require.Contains(t, bad, "page_size")
	require.Contains(t, bad["page_size"], "500")
	require.Contains(t, bad["page_size"], "[int32.gte_lte]")
	require.Zero(t, f.calls.Load(), "refused requests never reach the handler")

	got, err := client.GetRejectedEvent(ctx, &intakev1.GetRejectedEventRequest{Id: "r-1"})
	require.NoError(t, err)
	require.Equal(t, "r-1", got.GetRejectedEvent().GetId())
	require.Equal(t, "default", got.GetRejectedEvent().GetTenantId(), "the guard bound the request to the caller's tenant")
	require.EqualValues(t, 1, f.calls.Load())
}

// The request of a server-streaming call is held to the same rules as it
// is received: the stream ends InvalidArgument before the method does any
// work.
func TestRequestRulesRefuseStreamRequests(t *testing.T) {
	srv := grpcserver.New(quiet(), "", "")
	var ran atomic.Int32
	desc := grpc.ServiceDesc{
		ServiceName: "huifang.test.v1.WatchService",
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{StreamName: "Watch", ServerStreams: true, Handler: func(_ any, ss grpc.ServerStream) error {
			req := &intakev1.GetRejectedEventRequest{}
			if err := ss.RecvMsg(req); err != nil {
				return err
			}
			ran.Add(1)
			return ss.SendMsg(&intakev1.GetRejectedEventResponse{RejectedEvent: &intakev1.RejectedEvent{Id: req.GetId()}})
		}}},
	}
	srv.GRPC.RegisterService(&desc, struct{}{})
	conn := servicetest.Serve(t, srv)

	watch := func(req *intakev1.GetRejectedEventRequest) (*intakev1.GetRejectedEventResponse, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cs, err := conn.NewStream(ctx, &desc.Streams[0], "/huifang.test.v1.WatchService/Watch")
		require.NoError(t, err)
		require.NoError(t, cs.SendMsg(req))
		require.NoError(t, cs.CloseSend())
		resp := &intakev1.GetRejectedEventResponse{}
		return resp, cs.RecvMsg(resp)
	}
	_, err := watch(&intakev1.GetRejectedEventRequest{})
	require.Equal(t, map[string]string{"id": "is required [required]"}, fieldViolations(t, err))
	require.Zero(t, ran.Load(), "the method never ran")

	resp, err := watch(&intakev1.GetRejectedEventRequest{Id: "r-2"})
	require.NoError(t, err)
	require.Equal(t, "r-2", resp.GetRejectedEvent().GetId())

	// Streams without rules pass untouched: reflection (what grpcurl uses).
	refl, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(t.Context())
	require.NoError(t, err)
	require.NoError(t, refl.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}))
	listed, err := refl.Recv()
	require.NoError(t, err)
	var names []string
	for _, s := range listed.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	require.Contains(t, names, "huifang.test.v1.WatchService")
	require.NoError(t, refl.CloseSend())
}

// The HTTP/JSON gateway calls the server's own gRPC listener: the
// Authorization header is passed on (401 without it), the request rules
// answer 400 with the field violations, JSON in and out uses the proto
// names, and the OpenAPI document is served at /openapi.json.
func TestGatewayServesTheAPIOverHTTP(t *testing.T) {
	srv, f, is := guarded(t)
	require.NoError(t, srv.Gateway(t.Context(), []byte(`{"swagger":"2.0"}`), nil, intakev1.RegisterIntakeServiceHandler))
	require.NoError(t, srv.StartHTTP())
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.ServeGRPC(ctx, time.Second) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-served)
		require.NoError(t, srv.CloseHTTP(context.Background()))
	})
	base := "http://" + srv.HTTPAddr()
	token, err := is.Mint(issuer.Staff("default", "admin-1"))
	require.NoError(t, err)

	call := func(method, path, token, body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader(body))
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		var out map[string]any
		require.NoError(t, json.Unmarshal(raw, &out), "%s", raw)
		return resp.StatusCode, out
	}

	code, out := call(http.MethodGet, "/v1/rejected_events/r-1", "", "")
	require.Equal(t, http.StatusUnauthorized, code, "%v", out)
	require.EqualValues(t, codes.Unauthenticated, out["code"])

	code, out = call(http.MethodGet, "/v1/rejected_events/r-1", token, "")
	require.Equal(t, http.StatusOK, code, "%v", out)
	require.Equal(t, map[string]any{"id": "r-1", "tenant_id": "default"}, out["rejected_event"])

	code, out = call(http.MethodGet, "/v1/customers?page_size=501", token, "")
	require.Equal(t, http.StatusBadRequest, code, "%v", out)
	require.EqualValues(t, codes.InvalidArgument, out["code"])
	details, _ := out["details"].([]any)
	require.Len(t, details, 1, "%v", out)
	detail := details[0].(map[string]any)
	require.Equal(t, "type.googleapis.com/google.rpc.BadRequest", detail["@type"])
	violation := detail["field_violations"].([]any)[0].(map[string]any)
	require.Equal(t, "page_size", violation["field"])
	require.Contains(t, violation["description"], "[int32.gte_lte]")
	require.EqualValues(t, 1, f.calls.Load(), "only the good call reached the handler")

	resp, err := http.Get(base + "/openapi.json")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
}
