package grpcserver

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
)

// Registrar adds a service's HTTP/JSON routes to the gateway: the generated
// Register<Service>HandlerClient or Register<Service>Handler of a
// *.pb.gw.go, e.g. intakev1.RegisterIntakeServiceHandler.
type Registrar func(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error

// Gateway serves the HTTP/JSON surface of the services (the google.api.http
// routes of their .proto files, all under /v1/) on the HTTP side, and doc,
// the service's OpenAPI document, at GET /openapi.json when not nil. The
// gateway calls the server's own gRPC listener (ListenGRPC binds it now if
// it is not bound), so an HTTP call meets the interceptors a gRPC call
// meets: the guard (the Authorization header is passed on as the
// authorization metadata; 401 without a token, 403 out of scope, 429 beyond
// the caller's rate), the request rules (400 with the field violations) and
// the error mapping. creds are those the gateway dials with: nil for
// plaintext (no GRPC_TLS_*), else credentials that trust the server's
// certificate (SelfTLS). JSON field names are the proto names (snake_case);
// lowerCamelCase is accepted in requests too; unknown fields are refused.
func (s *Server) Gateway(ctx context.Context, doc []byte, creds credentials.TransportCredentials, register ...Registrar) error {
	if err := s.ListenGRPC(); err != nil {
		return err
	}
	s.mu.Lock()
	addr := loopback(s.grpcLis.Addr())
	s.mu.Unlock()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fmt.Errorf("grpcserver: gateway: dial %s: %w", addr, err)
	}
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
			UnmarshalOptions: protojson.UnmarshalOptions{},
		}),
	)
	for _, r := range register {
		if err := r(ctx, mux, conn); err != nil {
			_ = conn.Close()
			return fmt.Errorf("grpcserver: gateway: %w", err)
		}
	}
	s.mu.Lock()
	s.gatewayConns = append(s.gatewayConns, conn)
	s.mu.Unlock()
	s.Handle("/v1/", mux)
	if doc != nil {
		s.Handle("GET /openapi.json", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(doc)
		}))
	}
	return nil
}

// loopback is the address to reach a listener bound to addr from the same
// host: an unspecified host (":7001", "[::]:7001") becomes 127.0.0.1.
func loopback(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
