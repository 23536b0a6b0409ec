// Command dispatch runs the dispatch service: due visits become tasks that
// agents claim, attempts follow the retry policy, SMS and email are sent,
// the SLA clock runs.
package main

import (
	"context"
	"log/slog"
	"time"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"

	"github.com/huifang/huifang/pkg/app"
	pkgconfig "github.com/huifang/huifang/pkg/config"
	"github.com/huifang/huifang/pkg/grpcclient"
	"github.com/huifang/huifang/pkg/loop"
	"github.com/huifang/huifang/pkg/retention"
	"github.com/huifang/huifang/services/dispatch/internal/consumer"
	"github.com/huifang/huifang/services/dispatch/internal/contacts"
	"github.com/huifang/huifang/services/dispatch/internal/grpcapi"
	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/questionnaires"
	"github.com/huifang/huifang/services/dispatch/internal/sender"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
	"github.com/huifang/huifang/services/dispatch/internal/webhook"
	"github.com/huifang/huifang/services/dispatch/migrations"

	dispatch "github.com/huifang/huifang/services/dispatch/internal/app"
)

func main() { app.Main("dispatch", run) }

func run(ctx context.Context, log *slog.Logger) error {
	// Configuration.
	cfg := config{Base: app.Base{GRPCAddr: ":7003", HTTPAddr: ":8003"}}
	if err := app.LoadConfig(log, "dispatch", &cfg); err != nil {
		return err
	}
	warnRetired(log, pkgconfig.Env("dispatch"))
	set, err := cfg.parse()
	if err != nil {
		return err
	}

	// Runtime: Postgres, NATS, relay, gRPC.
	rt, err := app.Start(ctx, log, "dispatch", cfg.Base, migrations.FS)
	if err != nil {
		return err
	}

	// Senders of the automatic channels.
	local := &sender.Local{Pool: rt.Pool, Log: log, Now: time.Now}
	var sms, email sender.Sender = local, local
	if cfg.SMSSender == "telnyx" {
		sms = &sender.Telnyx{BaseURL: cfg.TelnyxBaseURL, APIKey: cfg.TelnyxAPIKey, From: cfg.TelnyxFrom,
			MessagingProfileID: cfg.TelnyxProfileID, WebhookURL: cfg.TelnyxWebhookURL}
	}
	if cfg.EmailSender == "resend" {
		email = &sender.Resend{BaseURL: cfg.ResendBaseURL, APIKey: cfg.ResendAPIKey, From: cfg.ResendFrom, ReplyTo: cfg.ResendReplyTo}
	}

	// Contacts, from intake at the moment of use.
	intakeConn, err := grpcclient.Dial(grpcclient.Config{Addr: cfg.IntakeAddr, CAFile: cfg.IntakeCAFile, ClientID: cfg.AuthClientID,
		ClientSecret: cfg.AuthClientSecret, TokenURL: cfg.AuthTokenURL, Issuer: cfg.AuthIssuer})
	if err != nil {
		rt.Close(ctx)
		return err
	}
	defer func() { _ = intakeConn.Close() }()
	book := &contacts.Intake{Client: intakev1.NewIntakeServiceClient(intakeConn)}

	// Questionnaires, from feedback at the moment of use (GetTaskContext).
	feedbackCA := cfg.FeedbackCAFile
	if feedbackCA == "" {
		feedbackCA = cfg.IntakeCAFile // one CA signs the peers' certificates
	}
	feedbackConn, err := grpcclient.Dial(grpcclient.Config{Addr: cfg.FeedbackAddr, CAFile: feedbackCA, ClientID: cfg.AuthClientID,
		ClientSecret: cfg.AuthClientSecret, TokenURL: cfg.AuthTokenURL, Issuer: cfg.AuthIssuer})
	if err != nil {
		rt.Close(ctx)
		return err
	}
	defer func() { _ = feedbackConn.Close() }()
	forms := &questionnaires.Feedback{Client: feedbackv1.NewFeedbackServiceClient(feedbackConn)}

	// The use cases.
	a := &dispatch.App{DB: rt.Pool, Relay: rt.Relay, Now: time.Now, Log: log,
		Lease: cfg.Lease, Retry: set.retry, Rules: set.rules, Poll: cfg.ClaimPoll, Waker: &dispatch.Waker{},
		Routing: store.Routing{OwnerWait: cfg.OwnerWait, BackupWait: cfg.BackupWait, SkillWait: cfg.SkillWait, DefaultCapacity: cfg.DefaultCapacity},
		SLAWarn: cfg.SLAWarn, SLABatch: slaBatch,
		Send: dispatch.Sending{Sender: sender.ByChannel{SMS: sms, Email: email}, Contacts: book, Postpone: cfg.ContactPostpone, Lease: cfg.SendLease,
			Retry: message.Retry{Backoff: cfg.SendBackoff, MaxTries: cfg.SendMaxTries}, Batch: cfg.SendBatch},
		DatabaseUp:     func() bool { return rt.Health.Up(app.DependencyPostgres) },
		Reminder:       task.ReminderPolicy{Lead: cfg.ReminderLead, MinGap: cfg.ReminderMinGap},
		Questionnaires: forms}

	// Consumers: VisitDue, VisitCancelled, CustomerUpdated.
	for _, c := range consumer.New(a) {
		rt.Consume(c)
	}

	// Loops: the sender of SMS and email, the SLA clock.
	rt.Loop(&loop.Loop{Name: "outgoing", Every: cfg.SendEvery, Batch: cfg.SendBatch, Round: a.SendDue})
	rt.Loop(&loop.Loop{Name: "sla", Every: cfg.SLAEvery, Batch: slaBatch, Round: a.MarkDeadlines})
	rt.Retain(retention.Class{Name: "messages", Retain: cfg.MessageRetention,
		Purge: func(ctx context.Context, cutoff time.Time, limit int) (int, error) {
			return store.PurgeMessages(ctx, rt.Pool, cutoff, limit)
		}})

	// Providers' delivery webhooks.
	if cfg.ReceiptAddr != "" {
		receipts := &webhook.Receipts{App: a, Log: log, TelnyxKey: set.telnyxKey}
		rt.Go("receipts", func(ctx context.Context) error { return receipts.Serve(ctx, cfg.ReceiptAddr, cfg.HTTPLimits()) })
	}

	// API.
	rt.CustomerData.Source.Related = store.CustomerRows()
	dispatchv1.RegisterDispatchServiceServer(rt.Server.GRPC, &grpcapi.Server{App: a, Watches: rt.Watches})
	// The HTTP/JSON surface (/v1/..., GET /openapi.json) on the HTTP port.
	if err := rt.Gateway(ctx, dispatchv1.RegisterDispatchServiceHandler); err != nil {
		rt.Close(ctx)
		return err
	}
	return rt.Run(ctx)
}

// slaBatch bounds one round of the SLA clock.
const slaBatch = 500
