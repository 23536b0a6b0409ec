// Package issuer is a small OpenID Connect issuer for development and tests:
// it publishes a discovery document and its signing keys (JWKS) over HTTP
// and mints tokens with the claims Huifang reads. `make run` starts one and
// writes ready tokens to .dev/tokens/; tests start one per test. A deployment
// uses a real identity provider instead (docs/security.md).
package issuer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/httpserver"
)

// Issuer signs tokens and serves the keys that verify them.
type Issuer struct {
	url      string
	audience string

	mu   sync.Mutex
	keys []jose.JSONWebKey // private keys; the last one signs
	srv  *http.Server
	lis  net.Listener

	cache tokens
	// clients are the OAuth 2.0 clients /token answers (client
	// credentials): id → secret and token.
	clients map[string]client
	// apps are the public clients that sign people in (AddPublicClient):
	// id → redirect URIs; people whom /authorize offers (AddPerson);
	// grants the authorization codes not yet exchanged.
	apps   map[string][]string
	people []Person
	grants map[string]grant
}

type client struct {
	secret string
	token  Token
}

// New returns an issuer that will be reached at url (the iss of its tokens)
// and issues tokens for audience. It holds one new ES256 key.
func New(url, audience string) (*Issuer, error) {
	is := &Issuer{url: url, audience: audience}
	if err := is.Rotate(); err != nil {
		return nil, err
	}
	return is, nil
}

// URL is the issuer's URL.
func (is *Issuer) URL() string { return is.url }

// Audience is the aud of the tokens it mints.
func (is *Issuer) Audience() string { return is.audience }

// JWKSURL is where the issuer publishes its keys.
func (is *Issuer) JWKSURL() string { return is.url + "/jwks.json" }

// TokenURL is where clients get tokens with their client credentials.
func (is *Issuer) TokenURL() string { return is.url + "/token" }

// AddClient lets the OAuth 2.0 client id (with secret) get tokens for tok
// from /token with the client-credentials grant, as a Huifang service does
// (ServiceAccount).
func (is *Issuer) AddClient(id, secret string, tok Token) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.clients == nil {
		is.clients = map[string]client{}
	}
	is.clients[id] = client{secret: secret, token: tok}
}

// token answers a client-credentials grant (RFC 6749 4.4), the client's
// credentials in HTTP basic authentication or in the form.
func (is *Issuer) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the form does not parse")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		is.exchange(w, r)
		return
	case "client_credentials":
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "only authorization_code (with PKCE) and client_credentials are supported")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	is.mu.Lock()
	c, known := is.clients[id]
	is.mu.Unlock()
	if !known || subtle.ConstantTimeCompare([]byte(c.secret), []byte(secret)) != 1 {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
		return
	}
	tok := c.token
	if tok.TTL == 0 {
		tok.TTL = time.Hour
	}
	raw, err := is.Mint(tok)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "the token could not be signed")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, map[string]any{"access_token": raw, "token_type": "Bearer", "expires_in": int(tok.TTL.Seconds())})
}

func oauthError(w http.ResponseWriter, code int, kind, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": kind, "error_description": description})
}

// Config is the auth configuration that accepts this issuer's tokens.
func (is *Issuer) Config() auth.Config {
	return auth.Config{Issuer: is.url, Audience: is.audience, JWKSURL: is.JWKSURL()}
}

// Rotate adds a new signing key; tokens minted before stay valid (their key
// is still published).
func (is *Issuer) Rotate() error {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("issuer: key: %w", err)
	}
	kid := make([]byte, 8)
	if _, err := rand.Read(kid); err != nil {
		return fmt.Errorf("issuer: key id: %w", err)
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys = append(is.keys, jose.JSONWebKey{Key: priv, KeyID: fmt.Sprintf("%x", kid), Algorithm: string(jose.ES256), Use: "sig"})
	return nil
}

// Token is what Mint signs: the subject, the Huifang claims and how long the
// token lives. Override fields set a claim to a chosen value (tests of
// refusals: a wrong issuer or audience, an expired token).
type Token struct {
	Subject string
	auth.Claims
	TTL time.Duration
	// Issuer and Audience replace the issuer's own when set.
	Issuer, Audience string
	// IssuedAt replaces now when set (an expired token: an hour ago with a
	// TTL of a minute).
	IssuedAt time.Time
}

// Mint signs t with the newest key.
func (is *Issuer) Mint(t Token) (string, error) {
	is.mu.Lock()
	key := is.keys[len(is.keys)-1]
	is.mu.Unlock()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("issuer: signer: %w", err)
	}
	now := t.IssuedAt
	if now.IsZero() {
		now = time.Now()
	}
	ttl := t.TTL
	if ttl == 0 {
		ttl = time.Hour
	}
	std := jwt.Claims{
		Issuer:   or(t.Issuer, is.url),
		Subject:  t.Subject,
		Audience: jwt.Audience{or(t.Audience, is.audience)},
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(ttl)),
	}
	raw, err := jwt.Signed(signer).Claims(std).Claims(t.Claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("issuer: sign: %w", err)
	}
	return raw, nil
}

func or(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// Handler serves the discovery document, the public keys, the token
// endpoint and the authorization endpoint.
func (is *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{
			"issuer":                                is.url,
			"jwks_uri":                              is.JWKSURL(),
			"id_token_signing_alg_values_supported": []string{string(jose.ES256)},
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"authorization_endpoint":                is.AuthorizeURL(),
			"token_endpoint":                        is.TokenURL(),
			"grant_types_supported":                 []string{"authorization_code", "client_credentials"},
			"code_challenge_methods_supported":      []string{"S256"},
			"scopes_supported":                      []string{"openid", "profile"},
			"token_endpoint_auth_methods_supported": []string{"none", "client_secret_basic", "client_secret_post"},
		})
	})
	mux.HandleFunc("POST /token", is.token)
	mux.HandleFunc("GET /authorize", is.authorize)
	mux.HandleFunc("POST /authorize", is.authorize)
	mux.HandleFunc("GET /jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, is.public())
	})
	return mux
}

func (is *Issuer) public() jose.JSONWebKeySet {
	is.mu.Lock()
	defer is.mu.Unlock()
	var set jose.JSONWebKeySet
	for _, k := range is.keys {
		set.Keys = append(set.Keys, k.Public())
	}
	return set
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// Listen starts an issuer on addr (host:port; port 0 picks one) serving its
// keys over plain HTTP, which only loopback development should do. Close
// stops it.
func Listen(addr, audience string) (*Issuer, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("issuer: listen: %w", err)
	}
	is, err := New("http://"+l.Addr().String(), audience)
	if err != nil {
		_ = l.Close()
		return nil, err
	}
	is.srv, is.lis = httpserver.New(is.Handler(), httpserver.Defaults()), l
	go func() { _ = is.srv.Serve(l) }()
	return is, nil
}

// Close stops the HTTP server Listen started.
func (is *Issuer) Close() error {
	if is.srv == nil {
		return nil
	}
	err := is.srv.Close()
	// The listener too: Close may come before Serve has taken it, and the
	// port must be free when Close returns.
	if lerr := is.lis.Close(); lerr != nil && !errors.Is(lerr, net.ErrClosed) && err == nil {
		err = lerr
	}
	return err
}

// SaveKeys writes the private keys to path (0600), so that a restarted
// development issuer keeps accepting the tokens it wrote before.
func (is *Issuer) SaveKeys(path string) error {
	is.mu.Lock()
	set := jose.JSONWebKeySet{Keys: is.keys}
	is.mu.Unlock()
	b, err := json.Marshal(set)
	if err != nil {
		return fmt.Errorf("issuer: keys: %w", err)
	}
	return os.WriteFile(path, b, 0o600)
}

// LoadKeys replaces the keys with those SaveKeys wrote to path.
func (is *Issuer) LoadKeys(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("issuer: keys: %w", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return fmt.Errorf("issuer: keys %s: %w", path, err)
	}
	if len(set.Keys) == 0 {
		return errors.New("issuer: keys " + path + ": none")
	}
	is.mu.Lock()
	is.keys = set.Keys
	is.mu.Unlock()
	return nil
}
