package auth_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/tenant"
)

// FuzzClaimsPrincipal: whatever claims a token (verified, so from the
// issuer, but shaped by whoever configured it) carries, they become a
// principal that keeps the product's rules, or are refused with an error
// wrapping ErrUnauthenticated (answered Unauthenticated / 401); never a
// panic. A principal has a subject and a known role; one tenant of the
// right form, or every tenant for a platform operator alone; an agent or
// leader names its agent; an integrator its source system.
func FuzzClaimsPrincipal(f *testing.F) {
	for _, seed := range []struct{ claims, sub string }{
		{`{"tenant":"acme","roles":["agent"],"agent_id":"a-1","org_units":["north"]}`, "u-1"},
		{`{"tenant":"acme","roles":["integrator"],"source_system":"erp"}`, "erp"},
		{`{"tenant":"*","roles":["platform_operator"]}`, "ops"},
		{`{"tenant":"*","roles":["platform_operator","agent"],"agent_id":"a"}`, "ops"},
		{`{"tenant":"acme","roles":["platform_operator"]}`, "ops"},
		{`{"tenant":"ACME","roles":["director"]}`, "d"},
		{`{"tenant":"acme","roles":["offline_access","uma_authorization"]}`, "u"},
		{`{"tenant":"acme","roles":["leader"]}`, "l"},
		{`{"tenant":"acme","roles":["tenant_admin"]}`, ""},
		{`{"tenant":1,"roles":"agent"}`, "u"},
		{`null`, "u"},
	} {
		f.Add([]byte(seed.claims), seed.sub)
	}
	f.Fuzz(func(t *testing.T, raw []byte, subject string) {
		var c auth.Claims
		if json.Unmarshal(raw, &c) != nil {
			return // go-oidc refuses claims that do not decode (Verify: "claims: …")
		}
		p, err := c.Principal(subject)
		if err != nil {
			if !errors.Is(err, auth.ErrUnauthenticated) {
				t.Fatalf("%v: want an error wrapping ErrUnauthenticated", err)
			}
			return
		}
		switch {
		case p.Subject == "" || p.Subject != subject:
			t.Fatalf("subject %q from %q", p.Subject, subject)
		case len(p.Roles) == 0:
			t.Fatal("a principal without a role")
		case p.Tenant == auth.AllTenants && (len(p.Roles) != 1 || p.Roles[0] != auth.PlatformOperator):
			t.Fatalf("every tenant for roles %v", p.Roles)
		case p.Tenant != auth.AllTenants && (!tenant.Valid(p.Tenant) || p.Has(auth.PlatformOperator)):
			t.Fatalf("tenant %q for roles %v", p.Tenant, p.Roles)
		case p.HasAny(auth.Agent, auth.Leader) && p.AgentID == "":
			t.Fatal("an agent or leader without agent_id")
		case p.Has(auth.Integrator) && p.SourceSystem == "":
			t.Fatal("an integrator without source_system")
		}
		for _, r := range p.Roles {
			if !auth.Known(r) {
				t.Fatalf("unknown role %q kept", r)
			}
		}
	})
}
