package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/huifang/huifang/pkg/tenant"
)

// Config says which tokens a service accepts.
type Config struct {
	// Issuer is the iss every token must carry (the OIDC issuer URL).
	Issuer string
	// Audience is the aud every token must carry (the client or API the
	// tokens are issued for).
	Audience string
	// JWKSURL is where the issuer publishes its signing keys; empty: the
	// jwks_uri of the issuer's discovery document.
	JWKSURL string
}

// Verifier checks bearer tokens and returns the principal they name.
type Verifier struct {
	oidc *oidc.IDTokenVerifier
}

// ErrUnauthenticated wraps every reason a token is refused.
var ErrUnauthenticated = errors.New("unauthenticated")

// NewVerifier returns a verifier for cfg. Keys are fetched from the JWKS URL
// when first needed, cached, and fetched again when a token names a key id
// the cache does not hold (the issuer rotated its keys). With no JWKSURL it
// reads the issuer's discovery document first, which needs the issuer to
// answer (ctx bounds that).
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("auth: an issuer and an audience are required (AUTH_ISSUER, AUTH_AUDIENCE)")
	}
	// The key set fetches with this client for as long as the service runs.
	keyCtx := oidc.ClientContext(context.WithoutCancel(ctx), &http.Client{Timeout: 10 * time.Second})
	jwks := cfg.JWKSURL
	if jwks == "" {
		p, err := oidc.NewProvider(oidc.ClientContext(ctx, &http.Client{Timeout: 10 * time.Second}), cfg.Issuer)
		if err != nil {
			return nil, fmt.Errorf("auth: discovering the issuer %s: %w", cfg.Issuer, err)
		}
		var doc struct {
			JWKSURL string `json:"jwks_uri"`
		}
		if err := p.Claims(&doc); err != nil || doc.JWKSURL == "" {
			return nil, fmt.Errorf("auth: the issuer %s publishes no jwks_uri", cfg.Issuer)
		}
		jwks = doc.JWKSURL
	}
	keys := &freshKeys{remote: oidc.NewRemoteKeySet(keyCtx, jwks)}
	return &Verifier{oidc: oidc.NewVerifier(cfg.Issuer, keys, &oidc.Config{
		ClientID:             cfg.Audience,
		SupportedSigningAlgs: []string{oidc.RS256, oidc.ES256, oidc.PS256, oidc.EdDSA},
	})}, nil
}

// freshKeys is the issuer's key set, checked a second time, after
// keyRetry, when a signature matches none of its keys: oidc.RemoteKeySet
// hands a token that names an unknown key the result of a fetch that has
// just ended instead of fetching again until that fetch's goroutine has
// cleared it, so right after a fetch a token of a key the issuer just
// rotated in failed now and then on a busy machine (a CI run did). The
// second check fetches anew; a token of a key the issuer does not publish
// is still refused, a little later.
type freshKeys struct {
	remote *oidc.RemoteKeySet
}

// keyRetry is the pause before the second check.
const keyRetry = 100 * time.Millisecond

// VerifySignature implements oidc.KeySet.
func (k *freshKeys) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	payload, err := k.remote.VerifySignature(ctx, jwt)
	if err == nil || strings.Contains(err.Error(), "fetching keys") || ctx.Err() != nil {
		return payload, err
	}
	select {
	case <-ctx.Done():
		return nil, err
	case <-time.After(keyRetry):
	}
	return k.remote.VerifySignature(ctx, jwt)
}

// Claims are the token claims a principal is made of, besides sub. An
// identity provider maps its users' attributes to these names (docs/security.md).
type Claims struct {
	Tenant       string   `json:"tenant"`
	Roles        []string `json:"roles"`
	AgentID      string   `json:"agent_id,omitempty"`
	OrgUnits     []string `json:"org_units,omitempty"`
	Departments  []string `json:"departments,omitempty"`
	SourceSystem string   `json:"source_system,omitempty"`
	// Service names the Huifang service of a service token ("dispatch").
	Service string `json:"service,omitempty"`
}

// Verify checks raw (a compact JWT: signature, issuer, audience, expiry) and
// returns its principal. Every refusal wraps ErrUnauthenticated and says why
// in words safe to give the caller.
func (v *Verifier) Verify(ctx context.Context, raw string) (Principal, error) {
	tok, err := v.oidc.Verify(ctx, raw)
	if err != nil {
		var expired *oidc.TokenExpiredError
		if errors.As(err, &expired) {
			return Principal{}, fmt.Errorf("%w: the token expired at %s", ErrUnauthenticated, expired.Expiry.UTC().Format(time.RFC3339))
		}
		if strings.Contains(err.Error(), "fetching keys") {
			// The token names a key the cache lacks and the issuer did not
			// answer: an outage, not a bad token.
			return Principal{}, fmt.Errorf("auth: the issuer's keys: %w", err)
		}
		return Principal{}, fmt.Errorf("%w: %s", ErrUnauthenticated, strings.TrimPrefix(err.Error(), "oidc: "))
	}
	var c Claims
	if err := tok.Claims(&c); err != nil {
		return Principal{}, fmt.Errorf("%w: claims: %w", ErrUnauthenticated, err)
	}
	return c.Principal(tok.Subject)
}

// Principal checks the claims and returns the principal of subject. Roles
// the product does not know (an identity provider's own) are left out.
func (c Claims) Principal(subject string) (Principal, error) {
	p := Principal{
		Subject:      subject,
		Tenant:       c.Tenant,
		AgentID:      c.AgentID,
		OrgUnits:     c.OrgUnits,
		Departments:  c.Departments,
		SourceSystem: c.SourceSystem,
		ServiceName:  c.Service,
	}
	for _, r := range c.Roles {
		if Known(Role(r)) {
			p.Roles = append(p.Roles, Role(r))
		}
	}
	switch {
	case subject == "":
		return Principal{}, fmt.Errorf("%w: the token names no subject (sub)", ErrUnauthenticated)
	case len(p.Roles) == 0:
		return Principal{}, fmt.Errorf("%w: the token grants no Huifang role (roles)", ErrUnauthenticated)
	case c.Tenant == AllTenants:
		if len(p.Roles) != 1 || (p.Roles[0] != PlatformOperator && p.Roles[0] != Service) {
			return Principal{}, fmt.Errorf("%w: only a platform_operator or a service token may name every tenant (tenant %q)", ErrUnauthenticated, AllTenants)
		}
	case !tenant.Valid(c.Tenant):
		return Principal{}, fmt.Errorf("%w: the token's tenant %s", ErrUnauthenticated, tenant.Rule)
	case p.HasAny(PlatformOperator, Service):
		return Principal{}, fmt.Errorf("%w: a platform_operator or service token names every tenant (tenant %q)", ErrUnauthenticated, AllTenants)
	}
	if p.Has(Service) && p.ServiceName == "" {
		return Principal{}, fmt.Errorf("%w: a service token names its service (service)", ErrUnauthenticated)
	}
	if p.HasAny(Agent, Leader) && p.AgentID == "" {
		return Principal{}, fmt.Errorf("%w: an agent or leader token names its agent (agent_id)", ErrUnauthenticated)
	}
	if p.Has(Integrator) && p.SourceSystem == "" {
		return Principal{}, fmt.Errorf("%w: an integrator token names its source system (source_system)", ErrUnauthenticated)
	}
	return p, nil
}
