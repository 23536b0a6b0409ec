package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TokenVerifier turns a bearer token into its principal; *Verifier is the
// real one.
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (Principal, error)
}

// Guard authenticates every gRPC call, holds each caller to its rate
// (SetRateLimit) and enforces one permission table: the one interceptor of
// a service. Health checks need no token and are not counted; reflection
// needs any valid token; every other method needs a rule in the table, a
// role the rule names, and a request within the caller's scope (Bind).
type Guard struct {
	log      *slog.Logger
	verifier atomic.Pointer[TokenVerifier]
	table    atomic.Pointer[Table]
	// limiter holds each caller to its rate (SetRateLimit); nil admits all.
	limiter atomic.Pointer[Limiter]
	// refused hears every call the table refuses (OnRefused).
	refused atomic.Pointer[RefusalFunc]
}

// RefusalFunc hears a call the permission table refused, before the caller
// is answered PermissionDenied: a service writes the refusals it must keep
// (a reveal of contacts) to its audit log. An error is logged; the call is
// refused all the same.
type RefusalFunc func(ctx context.Context, p Principal, method string, req proto.Message, reason error) error

// OnRefused sets the function that hears refused calls.
func (g *Guard) OnRefused(fn RefusalFunc) { g.refused.Store(&fn) }

// NewGuard returns a guard that refuses every method until SetTable; with a
// nil verifier, every call is Unavailable until SetVerifier.
func NewGuard(log *slog.Logger, v TokenVerifier) *Guard {
	g := &Guard{log: log}
	if v != nil {
		g.SetVerifier(v)
	}
	return g
}

// SetVerifier sets how tokens are checked.
func (g *Guard) SetVerifier(v TokenVerifier) { g.verifier.Store(&v) }

// SetTable sets the permission table.
func (g *Guard) SetTable(t Table) { g.table.Store(&t) }

// SetRateLimit holds every caller (tenant and subject) to l, on gRPC
// (ResourceExhausted beyond it) and wherever Admit is asked (intake's
// webhook: 429); a Rate of 0 or less lifts the limit. Buckets start full.
func (g *Guard) SetRateLimit(l RateLimit) { g.limiter.Store(NewLimiter(l, nil)) }

// Admit takes one request of p's rate (SetRateLimit); when p has none left
// it returns false and how long until one would be admitted.
func (g *Guard) Admit(p Principal) (time.Duration, bool) {
	return g.limiter.Load().Allow(p)
}

// Table returns the permission table (empty before SetTable).
func (g *Guard) Table() Table {
	if t := g.table.Load(); t != nil {
		return *t
	}
	return Table{}
}

// CoversServices checks the table against the services registered on a
// gRPC server (GetServiceInfo; health and reflection left out): a service
// refuses to start when one of its RPCs has no rule.
func (g *Guard) CoversServices(services map[string]grpc.ServiceInfo) error {
	t := g.Table()
	var missing []string
	for name, info := range services {
		if public(name) {
			continue
		}
		for _, m := range info.Methods {
			if _, ok := t["/"+name+"/"+m.Name]; !ok {
				missing = append(missing, "/"+name+"/"+m.Name)
			}
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("auth: the permission table has no rule for %v", missing)
	}
	return nil
}

// public tells whether a service is open without a token (health) or to
// any valid token (reflection).
func public(service string) bool {
	return strings.HasPrefix(service, "grpc.health.") || strings.HasPrefix(service, "grpc.reflection.")
}

// Unary is the guard as a unary interceptor.
func (g *Guard) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if strings.HasPrefix(info.FullMethod, "/grpc.health.") {
		return handler(ctx, req)
	}
	p, err := g.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	if err := g.admit(p); err != nil {
		return nil, err
	}
	msg, ok := req.(proto.Message)
	if !ok {
		return nil, status.Error(codes.Internal, "auth: request is not a protobuf message")
	}
	if err := g.Authorize(p, info.FullMethod, msg); err != nil {
		return nil, g.refuse(ctx, p, info.FullMethod, msg, err)
	}
	return handler(With(ctx, p), req)
}

// Stream is the guard as a stream interceptor: health needs no token,
// reflection any valid one, and every other method a rule in the table and
// a role the rule names, checked before the handler runs; each request the
// handler receives (RecvMsg: a server-streaming call's one request, before
// it reaches the method) is then authorized and bound to the caller
// exactly like Unary's, and a refusal ends the call PermissionDenied.
func (g *Guard) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if strings.HasPrefix(info.FullMethod, "/grpc.health.") {
		return handler(srv, ss)
	}
	p, err := g.authenticate(ss.Context())
	if err != nil {
		return err
	}
	if err := g.admit(p); err != nil {
		return err
	}
	ctx := With(ss.Context(), p)
	if strings.HasPrefix(info.FullMethod, "/grpc.reflection.") {
		return handler(srv, &principalStream{ServerStream: ss, ctx: ctx})
	}
	rule, ok := g.Table()[info.FullMethod]
	if !ok || !rule.Allows(p) {
		// Refused before the handler reads the request: Authorize says why.
		return g.refuse(ctx, p, info.FullMethod, nil, g.Authorize(p, info.FullMethod, nil))
	}
	return handler(srv, &principalStream{ServerStream: ss, ctx: ctx, guard: g, p: p, method: info.FullMethod})
}

// refuse logs a refused call, tells the refusal function (OnRefused) and
// returns PermissionDenied.
func (g *Guard) refuse(ctx context.Context, p Principal, method string, msg proto.Message, err error) error {
	g.log.InfoContext(ctx, "call refused", "method", method, "subject", p.Subject, "tenant", p.Tenant, "err", err)
	if fn := g.refused.Load(); fn != nil {
		if herr := (*fn)(ctx, p, method, msg, err); herr != nil {
			g.log.ErrorContext(ctx, "a refused call could not be recorded", "method", method, "subject", p.Subject, "err", herr)
		}
	}
	return status.Error(codes.PermissionDenied, err.Error())
}

// principalStream carries the caller in its context and, when guard is
// set, authorizes every request the handler receives.
type principalStream struct {
	grpc.ServerStream
	ctx    context.Context
	guard  *Guard
	p      Principal
	method string
}

func (s *principalStream) Context() context.Context { return s.ctx }

// RecvMsg receives a request and authorizes it against the permission table
// (Authorize: roles, tenant, self fields), as Unary does before a unary
// handler: a refused request never reaches the method.
func (s *principalStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil || s.guard == nil {
		return err
	}
	msg, ok := m.(proto.Message)
	if !ok {
		return status.Error(codes.Internal, "auth: request is not a protobuf message")
	}
	if err := s.guard.Authorize(s.p, s.method, msg); err != nil {
		return s.guard.refuse(s.ctx, s.p, s.method, msg, err)
	}
	return nil
}

// admit holds a gRPC call to the caller's rate: ResourceExhausted, with
// the time to wait in a RetryInfo detail, beyond it.
// A service's calls are not held here: each RPC a service may call keeps
// its own rate (intake's reveals).
func (g *Guard) admit(p Principal) error {
	if p.Has(Service) {
		return nil
	}
	return g.limiter.Load().Admit(p)
}

// Authorize checks that p may call method with req and binds req to p (Bind).
func (g *Guard) Authorize(p Principal, method string, req proto.Message) error {
	rule, ok := g.Table()[method]
	if !ok {
		return &Denied{Reason: "no permission rule for " + method}
	}
	if !rule.Allows(p) {
		return &Denied{Reason: fmt.Sprintf("%s needs one of the roles %v", rule.Permission, rule.Roles)}
	}
	return Bind(p, rule, req)
}

func (g *Guard) authenticate(ctx context.Context) (Principal, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	p, err := g.verify(ctx, md.Get("authorization"))
	switch {
	case errors.Is(err, ErrUnauthenticated):
		return Principal{}, status.Error(codes.Unauthenticated, err.Error())
	case err != nil:
		return Principal{}, status.Error(codes.Unavailable, err.Error())
	}
	return p, nil
}

// ErrUnavailable says tokens cannot be checked for the moment (the
// issuer's keys could not be fetched): the caller should try again.
var ErrUnavailable = errors.New("the token could not be checked now; try again")

// AuthenticateHTTP returns the principal of an HTTP request's
// "Authorization: Bearer" header. Its errors wrap ErrUnauthenticated (answer
// 401) or ErrUnavailable (answer 503).
func (g *Guard) AuthenticateHTTP(r *http.Request) (Principal, error) {
	return g.verify(r.Context(), r.Header.Values("Authorization"))
}

func (g *Guard) verify(ctx context.Context, header []string) (Principal, error) {
	raw, err := bearer(header)
	if err != nil {
		return Principal{}, err
	}
	v := g.verifier.Load()
	if v == nil {
		return Principal{}, ErrUnavailable
	}
	p, err := (*v).Verify(ctx, raw)
	if err != nil {
		if !errors.Is(err, ErrUnauthenticated) {
			g.log.WarnContext(ctx, "token check failed", "err", err)
			return Principal{}, ErrUnavailable
		}
		return Principal{}, err
	}
	return p, nil
}

// bearer returns the token of an authorization header (gRPC metadata or
// HTTP).
func bearer(vals []string) (string, error) {
	if len(vals) == 0 {
		return "", fmt.Errorf("%w: no bearer token (authorization: Bearer <token>)", ErrUnauthenticated)
	}
	scheme, tok, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(tok) == "" {
		return "", fmt.Errorf("%w: the authorization header is not \"Bearer <token>\"", ErrUnauthenticated)
	}
	return strings.TrimSpace(tok), nil
}
