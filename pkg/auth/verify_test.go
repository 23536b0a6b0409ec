package auth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/issuer"
)

// fixture is a local issuer on loopback and a verifier of its tokens; keyFetches
// counts the JWKS requests.
type fixture struct {
	is         *issuer.Issuer
	v          *auth.Verifier
	keyFetches *atomic.Int64
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	var fetches atomic.Int64
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/jwks.json") {
			fetches.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	is, err := issuer.New(srv.URL, "huifang")
	if err != nil {
		t.Fatal(err)
	}
	h = is.Handler()
	// No JWKS URL: the verifier discovers it as it would at a real issuer.
	v, err := auth.NewVerifier(context.Background(), auth.Config{Issuer: srv.URL, Audience: "huifang"})
	if err != nil {
		t.Fatal(err)
	}
	return fixture{is: is, v: v, keyFetches: &fetches}
}

func (f fixture) mint(t *testing.T, tok issuer.Token) string {
	t.Helper()
	raw, err := f.is.Mint(tok)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func agentToken() issuer.Token {
	return issuer.Token{Subject: "u-1", Claims: auth.Claims{Tenant: "acme", Roles: []string{"agent", "offline_access"}, AgentID: "a-1", OrgUnits: []string{"east"}}}
}

func TestVerifyAcceptsAValidToken(t *testing.T) {
	f := newFixture(t)
	p, err := f.v.Verify(context.Background(), f.mint(t, agentToken()))
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "u-1" || p.Tenant != "acme" || p.AgentID != "a-1" || len(p.Roles) != 1 || p.Roles[0] != auth.Agent || p.OrgUnits[0] != "east" {
		t.Fatalf("principal %+v: want subject u-1, tenant acme, agent a-1, the one known role agent, unit east", p)
	}
}

func TestVerifyRefuses(t *testing.T) {
	f := newFixture(t)
	other, err := issuer.New("http://127.0.0.1:1", "huifang")
	if err != nil {
		t.Fatal(err)
	}
	otherRaw, err := other.Mint(agentToken())
	if err != nil {
		t.Fatal(err)
	}
	tweak := func(f func(*issuer.Token)) issuer.Token { tok := agentToken(); f(&tok); return tok }
	withClaims := func(c auth.Claims) issuer.Token { return tweak(func(tok *issuer.Token) { tok.Claims = c }) }
	cases := []struct {
		name, raw, want string
	}{
		{"expired", f.mint(t, tweak(func(tok *issuer.Token) { tok.IssuedAt, tok.TTL = time.Now().Add(-time.Hour), time.Minute })), "expired"},
		{"wrong issuer", f.mint(t, tweak(func(tok *issuer.Token) { tok.Issuer = "https://elsewhere" })), "different provider"},
		{"wrong audience", f.mint(t, tweak(func(tok *issuer.Token) { tok.Audience = "another-api" })), "audience"},
		{"signed by another key", otherRaw, "signature"},
		{"not a token", "hello", "malformed"},
		{"no role", f.mint(t, withClaims(auth.Claims{Tenant: "acme", Roles: []string{"offline_access"}})), "no Huifang role"},
		{"bad tenant", f.mint(t, withClaims(auth.Claims{Tenant: "ACME!", Roles: []string{"director"}})), "tenant"},
		{"every tenant for a director", f.mint(t, withClaims(auth.Claims{Tenant: "*", Roles: []string{"director"}})), "platform_operator"},
		{"operator of one tenant", f.mint(t, withClaims(auth.Claims{Tenant: "acme", Roles: []string{"platform_operator"}})), "every tenant"},
		{"agent without agent id", f.mint(t, withClaims(auth.Claims{Tenant: "acme", Roles: []string{"agent"}})), "agent_id"},
		{"integrator without source", f.mint(t, withClaims(auth.Claims{Tenant: "acme", Roles: []string{"integrator"}})), "source_system"},
		{"service of one tenant", f.mint(t, withClaims(auth.Claims{Tenant: "acme", Roles: []string{"service"}, Service: "dispatch"})), "every tenant"},
		{"service without its name", f.mint(t, withClaims(auth.Claims{Tenant: "*", Roles: []string{"service"}})), "(service)"},
		{"service and staff", f.mint(t, withClaims(auth.Claims{Tenant: "*", Roles: []string{"service", "director"}, Service: "dispatch"})), "every tenant"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.v.Verify(context.Background(), c.raw)
			if !errors.Is(err, auth.ErrUnauthenticated) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v: want ErrUnauthenticated saying %q", err, c.want)
			}
		})
	}
}

// TestVerifyFetchesKeysOnceAndAgainOnRotation: keys are cached, and a token
// signed by a key the cache does not know makes the verifier fetch them again.
func TestVerifyFetchesKeysOnceAndAgainOnRotation(t *testing.T) {
	f := newFixture(t)
	for range 3 {
		if _, err := f.v.Verify(context.Background(), f.mint(t, agentToken())); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.keyFetches.Load(); n != 1 {
		t.Fatalf("%d key fetches for three tokens of one key, want 1", n)
	}
	if err := f.is.Rotate(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.v.Verify(context.Background(), f.mint(t, agentToken())); err != nil {
		t.Fatalf("token of the rotated key: %v", err)
	}
	if n := f.keyFetches.Load(); n != 2 {
		t.Fatalf("%d key fetches after a rotation, want 2", n)
	}
}

// TestVerifyIssuerAwayIsNotABadToken: a token with an unknown key while the
// issuer does not answer is an outage (try again), not Unauthenticated.
func TestVerifyIssuerAwayIsNotABadToken(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	is, err := issuer.New(srv.URL, "huifang")
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(context.Background(), is.Config())
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	raw, err := is.Mint(agentToken())
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), raw)
	if err == nil || errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("err %v: want an outage error that is not ErrUnauthenticated", err)
	}
}

func TestNewVerifierNeedsIssuerAndAudience(t *testing.T) {
	if _, err := auth.NewVerifier(context.Background(), auth.Config{Issuer: "http://x"}); err == nil || !strings.Contains(err.Error(), "AUTH_AUDIENCE") {
		t.Fatalf("err %v: want one naming AUTH_AUDIENCE", err)
	}
}
