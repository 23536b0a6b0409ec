package access_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/huifang/huifang/pkg/access"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/issuer"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"
	auditv1 "github.com/huifang/huifang/proto/huifang/audit/v1"
	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	privacyv1 "github.com/huifang/huifang/proto/huifang/privacy/v1"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
)

// TestTablesCoverEveryRPC fails when an RPC is added to a service without a
// rule in its table (or a rule names an RPC or a field that does not exist).
func TestTablesCoverEveryRPC(t *testing.T) {
	for _, s := range access.Services() {
		if err := s.Table.Covers(s.Descriptor); err != nil {
			t.Errorf("%s: %v", s.Name, err)
		}
	}
}

// TestForServesTheSharedAPIs: every service's table (what its guard
// enforces) covers its own API and the audit log's, which app.Start
// registers on every service, and nothing else; a runtime of a name
// access does not know still serves the audit log.
func TestForServesTheSharedAPIs(t *testing.T) {
	var shared []protoreflect.ServiceDescriptor
	for _, s := range access.Services() {
		if s.Shared {
			shared = append(shared, s.Descriptor)
		}
	}
	if len(shared) == 0 {
		t.Fatal("no shared API: the audit log's is one")
	}
	for _, s := range access.Services() {
		if s.Shared {
			continue
		}
		if err := access.For(s.Name).Covers(append([]protoreflect.ServiceDescriptor{s.Descriptor}, shared...)...); err != nil {
			t.Errorf("%s: %v", s.Name, err)
		}
	}
	if err := access.For("apptest").Covers(shared...); err != nil {
		t.Errorf("a service access does not know: %v", err)
	}
}

// TestEveryRPCAsEveryRole calls every RPC of every service as every role
// through a gRPC server guarded by the tables, with the handlers left
// unimplemented: a call the guard lets through ends Unimplemented, one it
// stops ends PermissionDenied or Unauthenticated. For each RPC × role: in
// scope (blank tenant and self fields, which the guard fills), and out of
// scope (another tenant; another agent in each self field).
func TestEveryRPCAsEveryRole(t *testing.T) {
	ctx := context.Background()
	is, err := issuer.Listen("127.0.0.1:0", "huifang")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = is.Close() })
	v, err := auth.NewVerifier(ctx, is.Config())
	if err != nil {
		t.Fatal(err)
	}
	guard := auth.NewGuard(slog.New(slog.DiscardHandler), v)
	var tables []auth.Table
	for _, s := range access.Services() {
		tables = append(tables, s.Table)
	}
	guard.SetTable(auth.Merge(tables...))
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(guard.Unary), grpc.ChainStreamInterceptor(guard.Stream))
	intakev1.RegisterIntakeServiceServer(srv, intakev1.UnimplementedIntakeServiceServer{})
	schedulerv1.RegisterSchedulerServiceServer(srv, schedulerv1.UnimplementedSchedulerServiceServer{})
	dispatchv1.RegisterDispatchServiceServer(srv, dispatchv1.UnimplementedDispatchServiceServer{})
	feedbackv1.RegisterFeedbackServiceServer(srv, feedbackv1.UnimplementedFeedbackServiceServer{})
	analyticsv1.RegisterAnalyticsServiceServer(srv, analyticsv1.UnimplementedAnalyticsServiceServer{})
	auditv1.RegisterAuditServiceServer(srv, auditv1.UnimplementedAuditServiceServer{})
	privacyv1.RegisterCustomerDataServiceServer(srv, privacyv1.UnimplementedCustomerDataServiceServer{})
	if err := guard.CoversServices(srv.GetServiceInfo()); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	tokens := map[auth.Role]string{}
	for _, role := range auth.AllRoles() {
		tok := issuer.Token{Subject: "user-" + string(role), Claims: auth.Claims{Tenant: "acme", Roles: []string{string(role)}, AgentID: "a-" + string(role), SourceSystem: "erp-east"}}
		if role == auth.PlatformOperator || role == auth.Service {
			tok.Tenant = auth.AllTenants
		}
		if role == auth.Service {
			tok.Service = "dispatch"
		}
		if tokens[role], err = is.Mint(tok); err != nil {
			t.Fatal(err)
		}
	}
	call := func(method string, md protoreflect.MethodDescriptor, token string, edit func(protoreflect.Message)) codes.Code {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
		if err != nil {
			t.Fatal(err)
		}
		req := mt.New()
		if edit != nil {
			edit(req)
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if token != "" {
			cctx = metadata.AppendToOutgoingContext(cctx, "authorization", "Bearer "+token)
		}
		return status.Code(conn.Invoke(cctx, method, req.Interface(), &emptypb.Empty{}))
	}

	calls := 0
	for _, s := range access.Services() {
		ms := s.Descriptor.Methods()
		for i := range ms.Len() {
			md := ms.Get(i)
			method := fmt.Sprintf("/%s/%s", s.Descriptor.FullName(), md.Name())
			rule := s.Table[method]
			if got := call(method, md, "", nil); got != codes.Unauthenticated {
				t.Errorf("%s without a token: %v, want Unauthenticated", method, got)
			}
			for _, role := range auth.AllRoles() {
				name := fmt.Sprintf("%s as %s", method, role)
				allowed := slices.Contains(rule.Roles, role)
				want := codes.PermissionDenied
				if allowed {
					want = codes.Unimplemented
				}
				calls++
				if got := call(method, md, tokens[role], nil); got != want {
					t.Errorf("%s, in scope: %v, want %v", name, got, want)
				}
				if !allowed {
					continue
				}
				if path := tenantPath(md.Input()); path != nil {
					want := codes.PermissionDenied
					if role == auth.PlatformOperator || role == auth.Service {
						want = codes.Unimplemented // cross-tenant maintenance, a service for every tenant
					}
					calls++
					if got := call(method, md, tokens[role], func(m protoreflect.Message) { set(m, path, "globex") }); got != want {
						t.Errorf("%s, another tenant (%v): %v, want %v", name, path, got, want)
					}
					want = codes.PermissionDenied
					if rule.AllTenants && role == auth.PlatformOperator {
						want = codes.Unimplemented
					}
					calls++
					if got := call(method, md, tokens[role], func(m protoreflect.Message) { set(m, path, "*") }); got != want {
						t.Errorf("%s, every tenant: %v, want %v", name, got, want)
					}
				}
				for field, over := range rule.Self {
					want := codes.PermissionDenied
					if slices.Contains(over, role) {
						want = codes.Unimplemented
					}
					fd := md.Input().Fields().ByName(protoreflect.Name(field))
					calls++
					if got := call(method, md, tokens[role], func(m protoreflect.Message) { m.Set(fd, protoreflect.ValueOfString("someone-else")) }); got != want {
						t.Errorf("%s, %s naming someone else: %v, want %v", name, field, got, want)
					}
				}
			}
		}
	}
	t.Logf("%d calls", calls)
}

// tenantPath returns the fields that lead to the first tenant_id of a
// request (at its top or one message down), nil when it has none.
func tenantPath(md protoreflect.MessageDescriptor) []protoreflect.FieldDescriptor {
	if fd := md.Fields().ByName("tenant_id"); fd != nil {
		return []protoreflect.FieldDescriptor{fd}
	}
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			continue
		}
		if inner := fd.Message().Fields().ByName("tenant_id"); inner != nil {
			return []protoreflect.FieldDescriptor{fd, inner}
		}
	}
	return nil
}

// set writes v at path, making the messages on the way (an element of a list).
func set(m protoreflect.Message, path []protoreflect.FieldDescriptor, v string) {
	for _, fd := range path[:len(path)-1] {
		if fd.IsList() {
			l := m.Mutable(fd).List()
			e := l.NewElement()
			l.Append(e)
			m = e.Message()
			continue
		}
		m = m.Mutable(fd).Message()
	}
	m.Set(path[len(path)-1], protoreflect.ValueOfString(v))
}

// TestSecurityDocIsCurrent fails when docs/security.md does not show the
// tables as they are (run make generate).
func TestSecurityDocIsCurrent(t *testing.T) {
	b, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := access.Splice(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != want {
		t.Fatal("docs/security.md shows stale permission tables: run make generate")
	}
}
