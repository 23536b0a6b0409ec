// Package grpcclient connects one Huifang service to another's gRPC API on
// its own account: an OAuth 2.0 client-credentials token from the identity
// provider (the service role, docs/security.md), refreshed before it
// expires, and TLS when a CA is configured.
package grpcclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Config says where the other service is and how this one proves who it is.
type Config struct {
	// Addr is the other service's gRPC address (host:port).
	Addr string
	// CAFile, when set, is the PEM CA of the other service's TLS
	// certificate: the connection uses TLS. Unset: plaintext, for loopback
	// development only.
	CAFile string
	// ClientID and ClientSecret are this service's OAuth 2.0 client at the
	// identity provider (AUTH_CLIENT_ID, AUTH_CLIENT_SECRET).
	ClientID, ClientSecret string
	// TokenURL is the provider's token endpoint; empty: the
	// token_endpoint of Issuer's discovery document, read at the first call.
	TokenURL string
	// Issuer is the OpenID Connect issuer (AUTH_ISSUER).
	Issuer string
	// Scopes, when the provider wants them.
	Scopes []string
}

// Validate names what is missing.
func (c Config) Validate() error {
	switch {
	case c.Addr == "":
		return errors.New("grpcclient: the address of the service to call is required")
	case c.ClientID == "" || c.ClientSecret == "":
		return errors.New("grpcclient: AUTH_CLIENT_ID and AUTH_CLIENT_SECRET are required: the service calls another on its own account (docs/security.md)")
	case c.TokenURL == "" && c.Issuer == "":
		return errors.New("grpcclient: AUTH_TOKEN_URL or AUTH_ISSUER is required to get the service's token")
	}
	return nil
}

// Dial returns a client connection to cfg.Addr whose every call carries the
// service's token. It does not connect before the first call.
func Dial(cfg Config, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tc := insecure.NewCredentials()
	secure := cfg.CAFile != ""
	if secure {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("grpcclient: CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("grpcclient: CA %s holds no PEM certificate", cfg.CAFile)
		}
		tc = credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	creds := &tokenCredentials{cfg: cfg, secure: secure, client: &http.Client{Timeout: 10 * time.Second}}
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(tc), grpc.WithPerRPCCredentials(creds),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler())}, opts...)
	conn, err := grpc.NewClient(cfg.Addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("grpcclient: %s: %w", cfg.Addr, err)
	}
	return conn, nil
}

// tokenCredentials puts the service's bearer token on every call; the
// client-credentials token source reuses a token until shortly before it
// expires.
type tokenCredentials struct {
	cfg    Config
	secure bool
	client *http.Client

	mu  sync.Mutex
	src oauth2.TokenSource
}

func (c *tokenCredentials) source(ctx context.Context) (oauth2.TokenSource, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.src != nil {
		return c.src, nil
	}
	url := c.cfg.TokenURL
	if url == "" {
		var err error
		if url, err = discover(ctx, c.client, c.cfg.Issuer); err != nil {
			return nil, err
		}
	}
	cc := clientcredentials.Config{ClientID: c.cfg.ClientID, ClientSecret: c.cfg.ClientSecret, TokenURL: url, Scopes: c.cfg.Scopes}
	// The token source outlives this call: it gets tokens with its own
	// HTTP client, not the call's context.
	c.src = cc.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, c.client))
	return c.src, nil
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c *tokenCredentials) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	src, err := c.source(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := src.Token()
	if err != nil {
		return nil, fmt.Errorf("grpcclient: the service's token: %w", err)
	}
	return map[string]string{"authorization": "Bearer " + tok.AccessToken}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: a
// token crosses plaintext only where no CA is configured (loopback
// development).
func (c *tokenCredentials) RequireTransportSecurity() bool { return c.secure }

// discover reads the token endpoint of the issuer's discovery document.
func discover(ctx context.Context, client *http.Client, issuer string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("grpcclient: discovery: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("grpcclient: discovery: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("grpcclient: discovery %s: %s", u, resp.Status)
	}
	var doc struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return "", fmt.Errorf("grpcclient: discovery %s: %w", u, err)
	}
	if doc.TokenEndpoint == "" {
		return "", fmt.Errorf("grpcclient: discovery %s names no token_endpoint: set AUTH_TOKEN_URL", u)
	}
	return doc.TokenEndpoint, nil
}
