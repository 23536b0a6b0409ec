package issuer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/huifang/huifang/pkg/auth"
)

// Staff is a token for one person of a tenant who holds every tenant role
// (agent, leader, director, department owner, QA reviewer, auditor, tenant
// admin) as agent agentID, in every org unit; development tools and tests
// act as such a person where the role is not what they test.
func Staff(tenant, agentID string) Token {
	roles := []string{}
	for _, r := range auth.AllRoles() {
		if r != auth.PlatformOperator && r != auth.Integrator && r != auth.Service {
			roles = append(roles, string(r))
		}
	}
	return Token{Subject: "staff-" + tenant + "-" + agentID, Claims: auth.Claims{Tenant: tenant, Roles: roles, AgentID: agentID}}
}

// Operator is a platform operator's token.
func Operator() Token {
	return Token{Subject: "operator", Claims: auth.Claims{Tenant: auth.AllTenants, Roles: []string{string(auth.PlatformOperator)}}}
}

// Integrator is the token of an upstream system of a tenant.
func Integrator(tenant, source string) Token {
	return Token{Subject: "integrator-" + tenant + "-" + source, Claims: auth.Claims{Tenant: tenant, Roles: []string{string(auth.Integrator)}, SourceSystem: source}}
}

// ServiceAccount is the token of a Huifang service calling another on its
// own account (dispatch asking intake for a contact).
func ServiceAccount(name string) Token {
	return Token{Subject: "service-" + name, Claims: auth.Claims{Tenant: auth.AllTenants, Roles: []string{string(auth.Service)}, Service: name}}
}

// Context returns ctx carrying tok as the call's bearer token.
func (is *Issuer) Context(ctx context.Context, tok Token) (context.Context, error) {
	raw, err := is.cached(tok)
	if err != nil {
		return nil, err
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+raw), nil
}

// StaffCalls is a client option for development tools and tests: a call
// that carries no token of its own is made by staff (Staff) of the tenant
// its request names (tenant_id, "default" when blank) acting as the agent
// it names (agent_id, leader_id, reviewer_id or by), or by the tenant's
// integrator for a request that names a source_system. A call that names
// no tenant and no agent is made by a platform operator. What it names is
// read by the client only to choose a token; the server checks the token.
func (is *Issuer) StaffCalls() grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if md, ok := metadata.FromOutgoingContext(ctx); !ok || len(md.Get("authorization")) == 0 {
			msg, _ := req.(proto.Message)
			tok := tokenFor(msg)
			var err error
			if ctx, err = is.Context(ctx, tok); err != nil {
				return err
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	})
}

func tokenFor(msg proto.Message) Token {
	if msg == nil {
		return Operator()
	}
	tenant, agent, source := names(msg.ProtoReflect(), 0)
	switch {
	case source != "":
		return Integrator(or(tenant, "default"), source)
	case tenant == "" && agent == "" && msg.ProtoReflect().Descriptor().Fields().ByName("tenant_id") == nil && !hasTenant(msg.ProtoReflect().Descriptor(), 0):
		return Operator()
	}
	return Staff(or(tenant, "default"), or(agent, "staff"))
}

// names finds the first tenant_id, person field and source_system set in m
// (two levels down at most).
func names(m protoreflect.Message, depth int) (tenant, agent, source string) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.Kind() == protoreflect.StringKind && !fd.IsList() && m.Has(fd):
			v := m.Get(fd).String()
			switch fd.Name() {
			case "tenant_id":
				tenant = or(tenant, v)
			case "agent_id", "leader_id", "reviewer_id", "by":
				agent = or(agent, v)
			case "source_system":
				source = or(source, v)
			}
		case fd.Kind() == protoreflect.MessageKind && !fd.IsMap() && depth < 2 && m.Has(fd):
			var sub protoreflect.Message
			if fd.IsList() {
				if m.Get(fd).List().Len() == 0 {
					continue
				}
				sub = m.Get(fd).List().Get(0).Message()
			} else {
				sub = m.Get(fd).Message()
			}
			t, a, s := names(sub, depth+1)
			tenant, agent, source = or(tenant, t), or(agent, a), or(source, s)
		}
	}
	return tenant, agent, source
}

// hasTenant tells whether messages of md carry a tenant_id (two levels down at most).
func hasTenant(md protoreflect.MessageDescriptor, depth int) bool {
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Name() == "tenant_id" {
			return true
		}
		if fd.Kind() == protoreflect.MessageKind && !fd.IsMap() && depth < 2 && hasTenant(fd.Message(), depth+1) {
			return true
		}
	}
	return false
}

// tokens caches minted tokens by what they say, so that a tool making many
// calls signs each token once.
type tokens struct {
	mu sync.Mutex
	m  map[string]string
}

func (is *Issuer) cached(tok Token) (string, error) {
	key := fmt.Sprintf("%v", tok)
	is.cache.mu.Lock()
	defer is.cache.mu.Unlock()
	if raw, ok := is.cache.m[key]; ok {
		return raw, nil
	}
	tok.TTL = max(tok.TTL, 24*time.Hour)
	raw, err := is.Mint(tok)
	if err != nil {
		return "", err
	}
	if is.cache.m == nil {
		is.cache.m = map[string]string{}
	}
	is.cache.m[key] = raw
	return raw, nil
}
