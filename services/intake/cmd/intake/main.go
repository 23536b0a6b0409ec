// Command intake runs Huifang's intake service: it takes completed services
// from upstream systems (NATS ingress, gRPC, an HTTP JSON webhook), keeps the
// customer archive and publishes ServiceCompleted and CustomerUpdated.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"

	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	privacyv1 "github.com/huifang/huifang/proto/huifang/privacy/v1"

	"github.com/huifang/huifang/pkg/app"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/customerdata"
	"github.com/huifang/huifang/pkg/grpcclient"
	"github.com/huifang/huifang/pkg/loop"
	intake "github.com/huifang/huifang/services/intake/internal/app"
	"github.com/huifang/huifang/services/intake/internal/consumer"
	"github.com/huifang/huifang/services/intake/internal/grpcapi"
	"github.com/huifang/huifang/services/intake/internal/privacy"
	"github.com/huifang/huifang/services/intake/internal/reseal"
	"github.com/huifang/huifang/services/intake/internal/store"
	"github.com/huifang/huifang/services/intake/internal/tier"
	"github.com/huifang/huifang/services/intake/internal/webhook"
	"github.com/huifang/huifang/services/intake/migrations"
)

func main() { app.Main("intake", run) }

type config struct {
	app.Base
	// WebhookAddr serves the HTTP JSON webhook and its OpenAPI document on
	// a port of their own; unset: on the service's HTTP port (8001) beside
	// /healthz; "off" disables it.
	WebhookAddr string `env:"WEBHOOK_ADDR"`
	// EncryptionKeys is the AES key ring "id:base64key,...": each key gives
	// every tenant a key-encryption key (HKDF) that wraps its customers'
	// data keys; the first wraps new data keys and seals refused payloads,
	// all unwrap (rotation). Required unless DEV_MODE (then unset: the
	// development key).
	EncryptionKeys string `env:"ENCRYPTION_KEYS,secret"`
	// HashKey (base64, >= 16 bytes) keys the search hashes of phones and
	// emails. Required unless DEV_MODE.
	HashKey string `env:"HASH_KEY,secret"`
	// TierRules are the tier rules in JSON; the default is the auto dealer's
	// key-customer rule (seed 000).
	TierRules string `env:"TIER_RULES"`
	// IngressWorkers is how many messages of the NATS ingress are handled at
	// once; order does not matter (the archive's merge rule), commits overlap.
	IngressWorkers int `env:"INGRESS_WORKERS" default:"4"`
	// TierRefresh is how often the tiers are re-evaluated as figures of the
	// last 365 days age (changes re-evaluate at once); 0 switches it off.
	TierRefresh time.Duration `env:"TIER_REFRESH" default:"6h"`
	// RevealRate is how many contacts a person may reveal (RevealContact,
	// GetCustomer by phone) a minute on average, RevealBurst how many at
	// once; RevealServiceRate and RevealServiceBurst the same a second for
	// a service (dispatch reveals once per message it sends).
	RevealRate         float64 `env:"REVEAL_RATE" default:"20"`
	RevealBurst        int     `env:"REVEAL_BURST" default:"20"`
	RevealServiceRate  float64 `env:"REVEAL_SERVICE_RATE" default:"500"`
	RevealServiceBurst int     `env:"REVEAL_SERVICE_BURST" default:"1000"`
	// SearchRate is how many SearchCustomers calls a caller may make a
	// minute on average, SearchBurst how many at once: a search is an
	// enumeration risk, held tighter than other reads.
	SearchRate  float64 `env:"SEARCH_RATE" default:"30"`
	SearchBurst int     `env:"SEARCH_BURST" default:"10"`
	// MaxEventBytes is the most bytes an event may have, as it arrives
	// (a NATS payload, a webhook body, an event's protobuf encoding) and as
	// intake publishes it (ServiceCompleted, CustomerUpdated); larger input
	// is refused on every path. At most the NATS max_payload less 64 KiB.
	MaxEventBytes int `env:"MAX_EVENT_BYTES" default:"262144"`
	// The other services' gRPC addresses: ExportCustomerData asks each for
	// its part, on intake's own account (AUTH_CLIENT_ID, AUTH_CLIENT_SECRET,
	// AUTH_TOKEN_URL); PeerCAFile, when set, is the CA of their TLS
	// certificates. Without a secret, exports are off.
	SchedulerAddr    string `env:"SCHEDULER_ADDR" default:"127.0.0.1:7002"`
	DispatchAddr     string `env:"DISPATCH_ADDR" default:"127.0.0.1:7003"`
	FeedbackAddr     string `env:"FEEDBACK_ADDR" default:"127.0.0.1:7004"`
	AnalyticsAddr    string `env:"ANALYTICS_ADDR" default:"127.0.0.1:7005"`
	PeerCAFile       string `env:"PEER_CA_FILE"`
	AuthClientID     string `env:"AUTH_CLIENT_ID" default:"intake"`
	AuthClientSecret string `env:"AUTH_CLIENT_SECRET,secret"`
	AuthTokenURL     string `env:"AUTH_TOKEN_URL,url"`
	// ExportTimeout bounds each service's part of an export.
	ExportTimeout time.Duration `env:"EXPORT_TIMEOUT" default:"30s"`
}

func run(ctx context.Context, log *slog.Logger) error {
	// Configuration.
	cfg := config{Base: app.Base{GRPCAddr: ":7001", HTTPAddr: ":8001", GRPCMaxRecvBytes: 16 << 20}} // a batch of events, as the webhook takes
	if err := app.LoadConfig(log, "intake", &cfg); err != nil {
		return err
	}
	var cipher *privacy.Cipher
	if !cfg.MigrateOnly { // migrations need no keys
		ring, hashKey, err := keys(cfg)
		if err != nil {
			return err
		}
		if privacy.UsesDevKeys(ring, hashKey) { // only in DEV_MODE: keys refuses them otherwise
			log.Warn("DEV_MODE: sealing with the committed development keys (ENCRYPTION_KEYS, HASH_KEY); never do this in production")
		}
		if cipher, err = privacy.New(ring, hashKey); err != nil {
			return err
		}
	}
	if cfg.TierRules == "" {
		cfg.TierRules = tier.DefaultRules
	}
	rules, err := tier.Parse(cfg.TierRules)
	if err != nil {
		return err
	}

	// Runtime, store and use cases.
	rt, err := app.Start(ctx, log, "intake", cfg.Base, migrations.FS)
	if err != nil {
		return err
	}
	if err := intake.CheckEventLimit(cfg.MaxEventBytes, rt.NC.MaxPayload()); err != nil {
		rt.Close(ctx)
		return err
	}
	st := &store.Store{Cipher: cipher}
	// A ring that lacks a key id still in use (a key retired before the
	// re-encryption moved everything off it) is refused, naming it.
	if err := reseal.Check(ctx, rt.Pool, st); err != nil {
		rt.Close(ctx)
		return err
	}
	a := &intake.App{DB: rt.Pool, Store: st, Rules: rules, Relay: rt.Relay, Now: time.Now, Log: log,
		MaxEventBytes: cfg.MaxEventBytes, Reveals: intake.Reveals{
			Staff:    auth.NewLimiter(auth.RateLimit{Rate: cfg.RevealRate / 60, Burst: cfg.RevealBurst}, nil),
			Services: auth.NewLimiter(auth.RateLimit{Rate: cfg.RevealServiceRate, Burst: cfg.RevealServiceBurst}, nil),
		},
		Searches: auth.NewLimiter(auth.RateLimit{Rate: cfg.SearchRate / 60, Burst: cfg.SearchBurst}, nil),
	}
	if err := a.SealLegacy(ctx); err != nil {
		rt.Close(ctx)
		return err
	}
	own := customerdata.Source{Service: "intake", Pool: rt.Pool, Skip: intake.ExportSkip(), Extra: a.ExportArchive}
	rt.CustomerData.Source = own
	exports, closePeers, err := peers(cfg, log, own)
	if err != nil {
		rt.Close(ctx)
		return err
	}
	defer closePeers()
	a.Exports = exports
	pending := reseal.NewGauge()
	rt.Metrics.MustRegister(pending)
	a.IgnoredFields = intake.NewIgnoredCounter()
	rt.Metrics.MustRegister(a.IgnoredFields)

	// The NATS ingress: one durable, INGRESS_WORKERS handlers.
	rt.Consume(consumer.Ingress(a), app.Workers(max(1, cfg.IngressWorkers)))
	// The contact ledger (GetCustomerTimeline): every service's events
	// about a customer's contacts, in stream order.
	rt.Consume(consumer.Ledger(a))

	// Background work: the re-encryption under per-customer data keys and
	// the re-wrap after a rotation (once), the re-hash after a HASH_KEY
	// change (once), the tier refresh.
	rt.Go("reseal", (&reseal.Job{DB: rt.Pool, Store: st, Log: log, Pending: pending}).Run)
	rt.Go("rehash", a.RehashStale)
	if cfg.TierRefresh > 0 {
		rt.Loop(&loop.Loop{Name: "tier-refresh", Every: cfg.TierRefresh,
			Round: func(ctx context.Context) (int, error) { return a.RefreshTiers(ctx, intake.DefaultBatch) }})
	}

	// gRPC and the HTTP webhook.
	api := &grpcapi.Server{App: a}
	intakev1.RegisterIntakeServiceServer(rt.Server.GRPC, api)
	rt.Guard.OnRefused(api.RefusedCall)
	// The HTTP/JSON surface (/v1/..., GET /openapi.json) on the HTTP port;
	// the webhook's own POST /v1/services and /v1/services:batch below take
	// precedence over the gateway's routes of the same RPCs.
	if err := rt.Gateway(ctx, intakev1.RegisterIntakeServiceHandler); err != nil {
		rt.Close(ctx)
		return err
	}
	switch addr := webhookAddr(cfg.WebhookAddr, cfg.HTTPAddr); addr {
	case "": // switched off
	case cfg.HTTPAddr:
		webhook.Register(rt.Server.Handle, a, log, rt.Guard)
		log.Info("webhook serving on the HTTP port", "addr", rt.Server.HTTPAddr())
	default:
		rt.Go("webhook", func(ctx context.Context) error { return webhook.Serve(ctx, log, addr, cfg.HTTPLimits(), a, rt.Guard) })
	}
	return rt.Run(ctx)
}

// ErrKeys is the refusal to start without real keys outside DEV_MODE.
var ErrKeys = errors.New("intake: ENCRYPTION_KEYS and HASH_KEY must be set to keys of your own")

// keys are the key ring and hash key intake runs with: those configured.
// Unset or the committed development keys are refused unless DEV_MODE,
// which fills in what is unset with the development keys.
func keys(cfg config) (ring, hashKey string, err error) {
	ring, hashKey = strings.TrimSpace(cfg.EncryptionKeys), strings.TrimSpace(cfg.HashKey)
	if cfg.DevMode {
		if ring == "" {
			ring = privacy.DevKeys
		}
		if hashKey == "" {
			hashKey = privacy.DevHashKey
		}
		return ring, hashKey, nil
	}
	var problems []string
	if ring == "" {
		problems = append(problems, "ENCRYPTION_KEYS is unset")
	}
	if hashKey == "" {
		problems = append(problems, "HASH_KEY is unset")
	}
	if len(problems) == 0 && privacy.UsesDevKeys(ring, hashKey) {
		problems = append(problems, "ENCRYPTION_KEYS (its first key) or HASH_KEY is the committed development key")
	}
	if len(problems) > 0 {
		return "", "", fmt.Errorf("%w (%s): generate each key with `openssl rand -base64 32` and set "+
			"ENCRYPTION_KEYS=<id>:<base64 key> (e.g. ENCRYPTION_KEYS=k2026:Zm9v…=, the first key current) and HASH_KEY=<base64 key>; "+
			"see docs/configuration.md, \"Encryption keys\"; DEV_MODE=true uses the development keys (development and tests only)",
			ErrKeys, strings.Join(problems, "; "))
	}
	return ring, hashKey, nil
}

// webhookAddr is where the webhook listens: the HTTP address (served by the
// service's own HTTP server) unless another one is configured; "" when
// switched off.
func webhookAddr(configured, httpAddr string) string {
	switch configured {
	case "off":
		return ""
	case "":
		return httpAddr
	}
	return configured
}

// peers dials the other services for exports, on intake's own account.
// Without AUTH_CLIENT_SECRET exports are off (the RPC says why), and the
// start says so once.
func peers(cfg config, log *slog.Logger, own customerdata.Source) (*intake.Exports, func(), error) {
	ex := &intake.Exports{Own: own, Peers: intake.Peers{}, Timeout: cfg.ExportTimeout}
	if cfg.AuthClientSecret == "" {
		ex.Off = "AUTH_CLIENT_SECRET is unset: intake has no account to ask the other services for their part"
		log.Warn("ExportCustomerData is off: set AUTH_CLIENT_ID and AUTH_CLIENT_SECRET (intake's service account) to gather exports", "docs", "docs/privacy.md")
		return ex, func() {}, nil
	}
	addrs := map[string]string{"scheduler": cfg.SchedulerAddr, "dispatch": cfg.DispatchAddr, "feedback": cfg.FeedbackAddr, "analytics": cfg.AnalyticsAddr}
	var conns []*grpc.ClientConn
	closeAll := func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}
	for _, name := range intake.PeerNames() {
		conn, err := grpcclient.Dial(grpcclient.Config{Addr: addrs[name], CAFile: cfg.PeerCAFile, ClientID: cfg.AuthClientID,
			ClientSecret: cfg.AuthClientSecret, TokenURL: cfg.AuthTokenURL, Issuer: cfg.AuthIssuer})
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("intake: %s for exports: %w", name, err)
		}
		conns = append(conns, conn)
		ex.Peers[name] = privacyv1.NewCustomerDataServiceClient(conn)
	}
	return ex, closeAll, nil
}
