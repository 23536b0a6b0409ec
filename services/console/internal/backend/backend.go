// Package backend holds the console's connections to the five Huifang
// services. Every call carries the signed-in user's own access token (put
// on the context with WithToken), so each service checks the user's roles
// and scope exactly as it would for any other client: the console has no
// account of its own and can do nothing its user may not.
package backend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"
	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
)

// Addrs are the gRPC addresses of the services (host:port).
type Addrs struct {
	Intake, Scheduler, Dispatch, Feedback, Analytics string
	// CAFile, when set, is the PEM CA of the services' TLS certificates;
	// unset, the connections are plaintext (loopback development only).
	CAFile string
}

// Clients are the five services' APIs.
type Clients struct {
	Intake    intakev1.IntakeServiceClient
	Scheduler schedulerv1.SchedulerServiceClient
	Dispatch  dispatchv1.DispatchServiceClient
	Feedback  feedbackv1.FeedbackServiceClient
	Analytics analyticsv1.AnalyticsServiceClient

	conns []*grpc.ClientConn
}

// Dial connects to every service; it does not wait for them (a service
// that is away fails its calls with Unavailable, which the pages show).
func Dial(a Addrs) (*Clients, error) {
	creds := insecure.NewCredentials()
	secure := false
	if a.CAFile != "" {
		pem, err := os.ReadFile(a.CAFile)
		if err != nil {
			return nil, fmt.Errorf("backend: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("backend: CA file %s holds no certificate", a.CAFile)
		}
		creds = credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
		secure = true
	}
	c := &Clients{}
	dial := func(name, addr string) (*grpc.ClientConn, error) {
		if addr == "" {
			return nil, fmt.Errorf("backend: the address of %s is required (%s_ADDR)", name, name)
		}
		conn, err := grpc.NewClient(addr,
			grpc.WithTransportCredentials(creds),
			grpc.WithPerRPCCredentials(userToken{secure: secure}),
			grpc.WithStatsHandler(otelgrpc.NewClientHandler()))
		if err != nil {
			return nil, fmt.Errorf("backend: %s at %s: %w", name, addr, err)
		}
		c.conns = append(c.conns, conn)
		return conn, nil
	}
	var errs []error
	must := func(name, addr string) *grpc.ClientConn {
		conn, err := dial(name, addr)
		errs = append(errs, err)
		return conn
	}
	in, sc, di, fe, an := must("INTAKE", a.Intake), must("SCHEDULER", a.Scheduler), must("DISPATCH", a.Dispatch), must("FEEDBACK", a.Feedback), must("ANALYTICS", a.Analytics)
	if err := errors.Join(errs...); err != nil {
		c.Close()
		return nil, err
	}
	c.Intake = intakev1.NewIntakeServiceClient(in)
	c.Scheduler = schedulerv1.NewSchedulerServiceClient(sc)
	c.Dispatch = dispatchv1.NewDispatchServiceClient(di)
	c.Feedback = feedbackv1.NewFeedbackServiceClient(fe)
	c.Analytics = analyticsv1.NewAnalyticsServiceClient(an)
	return c, nil
}

// Close closes the connections.
func (c *Clients) Close() {
	for _, conn := range c.conns {
		_ = conn.Close()
	}
}

type tokenKey struct{}

// WithToken returns ctx whose calls carry raw (the user's access token).
func WithToken(ctx context.Context, raw string) context.Context {
	return context.WithValue(ctx, tokenKey{}, raw)
}

// userToken puts the context's token on each call; a call without one
// goes without, and the service refuses it (Unauthenticated).
type userToken struct{ secure bool }

func (u userToken) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	raw, _ := ctx.Value(tokenKey{}).(string)
	if raw == "" {
		return nil, nil
	}
	return map[string]string{"authorization": "Bearer " + raw}, nil
}

func (u userToken) RequireTransportSecurity() bool { return u.secure }
