// Command intake runs Huifang's intake service: it takes completed services
// from upstream systems (NATS ingress, gRPC, an HTTP JSON webhook), keeps the
// customer archive and publishes ServiceCompleted and CustomerUpdated.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"

	"github.com/huifang/huifang/pkg/app"
	"github.com/huifang/huifang/services/intake/internal/grpcapi"
	"github.com/huifang/huifang/services/intake/internal/pipeline"
	"github.com/huifang/huifang/services/intake/internal/privacy"
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
	// EncryptionKeys is the AES key ring "id:base64key,...": the first seals
	// new data, all open old data (rotation). Unset: a development key.
	EncryptionKeys string `env:"ENCRYPTION_KEYS,secret"`
	// HashKey (base64, >= 16 bytes) keys the search hashes of phones and emails.
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
	// RevealContacts shows phones and emails unmasked in API responses.
	RevealContacts bool `env:"REVEAL_CONTACTS" default:"false"`
}

func run(ctx context.Context, log *slog.Logger) error {
	cfg := config{Base: app.Base{GRPCAddr: ":7001", HTTPAddr: ":8001"}}
	if err := app.LoadConfig(log, "intake", &cfg); err != nil {
		return err
	}
	if cfg.EncryptionKeys == "" || cfg.HashKey == "" {
		log.Warn("ENCRYPTION_KEYS or HASH_KEY unset: using the development keys; never do this in production")
		if cfg.EncryptionKeys == "" {
			cfg.EncryptionKeys = privacy.DevKeys
		}
		if cfg.HashKey == "" {
			cfg.HashKey = privacy.DevHashKey
		}
	}
	cipher, err := privacy.New(cfg.EncryptionKeys, cfg.HashKey)
	if err != nil {
		return err
	}
	if cfg.TierRules == "" {
		cfg.TierRules = tier.DefaultRules
	}
	rules, err := tier.Parse(cfg.TierRules)
	if err != nil {
		return err
	}

	rt, err := app.Start(ctx, log, "intake", cfg.Base, migrations.FS)
	if err != nil {
		return err
	}
	st := &store.Store{Pool: rt.Pool, Cipher: cipher, Rules: rules, Now: time.Now}
	if n, err := st.EncryptLegacy(ctx); err != nil {
		rt.Close(ctx)
		return err
	} else if n > 0 {
		log.Info("encrypted the contacts of customers stored before encryption", "customers", n)
	}
	pl := &pipeline.Pipeline{Store: st, Relay: rt.Relay, Now: time.Now}
	if n, err := st.SealLegacyRejected(ctx, 500); err != nil {
		rt.Close(ctx)
		return err
	} else if n > 0 {
		log.Info("encrypted the payloads of inputs refused before encryption", "rejected", n)
	}
	rt.Consume(pl.IngressConsumer(), app.Workers(max(1, cfg.IngressWorkers)))
	intakev1.RegisterIntakeServiceServer(rt.Server.GRPC, &grpcapi.Server{
		Store: st, Pipeline: pl, Now: time.Now,
		RevealContacts: func(context.Context) bool { return cfg.RevealContacts },
	})
	rt.Go("rehash", func(ctx context.Context) error { rehash(ctx, log, st); return nil })
	if cfg.TierRefresh > 0 {
		rt.Go("tier-refresh", func(ctx context.Context) error { return refreshTiers(ctx, log, st, cfg.TierRefresh, rt.Relay.Notify) })
	}
	switch addr := webhookAddr(cfg.WebhookAddr, cfg.HTTPAddr); addr {
	case "": // switched off
	case cfg.HTTPAddr:
		webhook.Register(rt.Server.Handle, pl, log)
		log.Info("webhook serving on the HTTP port", "addr", rt.Server.HTTPAddr())
	default:
		rt.Go("webhook", func(ctx context.Context) error {
			return serveWebhook(ctx, log, addr, webhook.Handler(pl, log))
		})
	}
	return rt.Run(ctx)
}

// rehash recomputes, once at start, the search hashes made under another
// HASH_KEY (after the key changed, or rows stored before hash key ids were
// kept). Until it is done such customers are not found by phone. A failure
// is logged; RehashContacts, or the next start, goes on where it stopped.
func rehash(ctx context.Context, log *slog.Logger, st *store.Store) {
	stale, err := st.StaleHashes(ctx)
	if err != nil || stale == 0 {
		if err != nil {
			log.WarnContext(ctx, "counting stale search hashes failed", "err", err)
		}
		return
	}
	log.InfoContext(ctx, "re-hashing contacts hashed under another HASH_KEY", "customers", stale)
	n, err := st.Rehash(ctx, 500)
	if err != nil {
		log.WarnContext(ctx, "re-hashing stopped; RehashContacts or the next start goes on", "rehashed", n, "err", err)
		return
	}
	log.InfoContext(ctx, "contacts re-hashed", "customers", n)
}

// refreshTiers re-evaluates the tiers every interval until ctx ends.
func refreshTiers(ctx context.Context, log *slog.Logger, st *store.Store, every time.Duration, notify func()) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		n, err := st.RefreshTiers(ctx, 500)
		if err != nil {
			log.WarnContext(ctx, "tier refresh failed; next round retries", "err", err)
			continue
		}
		if n > 0 {
			notify()
			log.InfoContext(ctx, "tiers refreshed", "changed", n)
		}
	}
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

// serveWebhook serves h on addr until ctx ends.
func serveWebhook(ctx context.Context, log *slog.Logger, addr string, h http.Handler) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("webhook: listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	log.InfoContext(ctx, "webhook serving", "addr", l.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("webhook: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("webhook: shutdown: %w", err)
	}
	return nil
}
