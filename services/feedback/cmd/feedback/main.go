// Command feedback runs Huifang's feedback service: it learns visits from
// VisitDue, keeps the questionnaires, records what customers answered, runs
// the complaint loop until the customer is satisfied, escalates overdue
// complaints by itself and samples records for quality review.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"

	"github.com/huifang/huifang/pkg/app"
	"github.com/huifang/huifang/pkg/loop"
	"github.com/huifang/huifang/pkg/retention"
	feedback "github.com/huifang/huifang/services/feedback/internal/app"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/consumer"
	"github.com/huifang/huifang/services/feedback/internal/grpcapi"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/store"
	"github.com/huifang/huifang/services/feedback/migrations"
)

func main() { app.Main("feedback", run) }

type config struct {
	app.Base
	// ComplaintDeadline is how long the owning department has at each level
	// when its category rule names no deadline; complaint.DefaultDeadline
	// (seed 003: 48 hours) unless set.
	ComplaintDeadline time.Duration `env:"COMPLAINT_DEADLINE"`
	// ComplaintRules route problems by category:
	// category=department[:severity[:deadline]], comma-separated; "*" is
	// every other category. complaint.DefaultRulesSpec unless set.
	ComplaintRules string `env:"COMPLAINT_RULES"`
	// PolicyQuestionnaires names the questionnaire of a scheduler policy's
	// visits for every tenant: policy_id=questionnaire_id, comma-separated.
	PolicyQuestionnaires string `env:"POLICY_QUESTIONNAIRES" default:"builtin-appliance-purchase=seed-001-appliance"`
	// EscalationInterval is how often overdue complaints are looked for.
	EscalationInterval time.Duration `env:"ESCALATION_INTERVAL" default:"1m"`
	// RecordRetention is how long the free text of a visit record and of
	// its complaints is kept once they are closed; then it is redacted as
	// an erasure redacts it (ratings and categories stay). 0 keeps it
	// (docs/privacy.md, "How long data is kept").
	RecordRetention time.Duration `env:"RECORD_RETENTION" default:"0s"`
}

// defaults is the configuration before the environment is read: the
// domain's defaults, so that they are stated once, in the domain.
func defaults() config {
	return config{
		Base:              app.Base{GRPCAddr: ":7004", HTTPAddr: ":8004"},
		ComplaintDeadline: complaint.DefaultDeadline,
		ComplaintRules:    complaint.DefaultRulesSpec,
	}
}

func run(ctx context.Context, log *slog.Logger) error {
	// Configuration.
	cfg := defaults()
	if err := app.LoadConfig(log, "feedback", &cfg); err != nil {
		return err
	}
	if cfg.ComplaintDeadline <= 0 {
		return fmt.Errorf("COMPLAINT_DEADLINE must be positive, got %s", cfg.ComplaintDeadline)
	}
	if cfg.EscalationInterval <= 0 {
		return fmt.Errorf("ESCALATION_INTERVAL must be positive, got %s", cfg.EscalationInterval)
	}
	rules, err := complaint.ParseRules(cfg.ComplaintRules, cfg.ComplaintDeadline)
	if err != nil {
		return fmt.Errorf("COMPLAINT_RULES: %w", err)
	}
	policies, err := parsePolicies(cfg.PolicyQuestionnaires)
	if err != nil {
		return fmt.Errorf("POLICY_QUESTIONNAIRES: %w", err)
	}

	// Runtime: Postgres (with the migrations), NATS, the outbox relay, servers.
	rt, err := app.Start(ctx, log, "feedback", cfg.Base, migrations.FS)
	if err != nil {
		return err
	}

	// The use cases; the seed templates and the configured policies first.
	a := &feedback.App{DB: rt.Pool, Relay: rt.Relay, Now: time.Now, Rules: rules}
	if err := a.Prepare(ctx, policies); err != nil {
		rt.Close(ctx)
		return err
	}

	// Consumers, loops, gRPC.
	for _, c := range consumer.New(a) {
		rt.Consume(c)
	}
	rt.Loop(&loop.Loop{
		Name:  "complaint-escalator",
		Every: cfg.EscalationInterval,
		Batch: feedback.DefaultEscalationBatch,
		Round: a.EscalateOverdue,
	})
	rt.Retain(retention.Class{Name: "records", Retain: cfg.RecordRetention,
		Purge: func(ctx context.Context, cutoff time.Time, limit int) (int, error) {
			return store.RedactBefore(ctx, rt.Pool, cutoff, limit)
		}})
	rt.CustomerData.Source.Related = store.CustomerRows()
	feedbackv1.RegisterFeedbackServiceServer(rt.Server.GRPC, &grpcapi.Server{App: a, Watches: rt.Watches})
	// The HTTP/JSON surface (/v1/..., GET /openapi.json) on the HTTP port.
	if err := rt.Gateway(ctx, feedbackv1.RegisterFeedbackServiceHandler); err != nil {
		rt.Close(ctx)
		return err
	}
	return rt.Run(ctx)
}

// parsePolicies reads policy_id=questionnaire_id entries, comma-separated.
func parsePolicies(spec string) (map[string]string, error) {
	out := map[string]string{}
	for _, e := range strings.Split(spec, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		policy, qid, ok := strings.Cut(e, "=")
		policy, qid = strings.TrimSpace(policy), strings.TrimSpace(qid)
		if !ok || policy == "" || !questionnaire.IDPattern.MatchString(qid) {
			return nil, fmt.Errorf("entry %q: want policy_id=questionnaire_id", e)
		}
		out[policy] = qid
	}
	return out, nil
}
