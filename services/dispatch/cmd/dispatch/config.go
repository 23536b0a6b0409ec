package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/app"
	pkgconfig "github.com/huifang/huifang/pkg/config"
	"github.com/huifang/huifang/pkg/enum"
	"github.com/huifang/huifang/services/dispatch/internal/sender"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// config is dispatch's configuration: the runtime's (app.Base) and the
// service's own, each with its default.
type config struct {
	app.Base
	// IntakeAddr is intake's gRPC address: dispatch asks it for each
	// message's address and each click-to-dial number (RevealContact) and
	// keeps no contact itself. IntakeCAFile, when set, is the CA of
	// intake's TLS certificate.
	IntakeAddr   string `env:"INTAKE_ADDR" default:"127.0.0.1:7001"`
	IntakeCAFile string `env:"INTAKE_CA_FILE"`
	// AuthClientID and AuthClientSecret are dispatch's OAuth 2.0 client at
	// the identity provider (the service role, docs/security.md);
	// AuthTokenURL its token endpoint (empty: from AUTH_ISSUER's discovery).
	AuthClientID     string `env:"AUTH_CLIENT_ID" default:"dispatch"`
	AuthClientSecret string `env:"AUTH_CLIENT_SECRET,secret"`
	AuthTokenURL     string `env:"AUTH_TOKEN_URL,url"`
	// MessageRetention is how long an SMS or email that reached its end
	// (sent, delivered, failed) is kept; 0 keeps them (docs/privacy.md).
	MessageRetention time.Duration `env:"MESSAGE_RETENTION" default:"2160h"`
	// ContactPostpone is how long a message waits when intake could not
	// give its address for the moment (the try does not count).
	ContactPostpone time.Duration `env:"CONTACT_POSTPONE" default:"30s"`
	// Lease is how long a claimed task stays with its agent before it goes
	// back to the queue (HeartbeatTask extends it).
	Lease time.Duration `env:"LEASE" default:"15m"`
	// DefaultCapacity is how many tasks an agent without its own capacity may hold.
	DefaultCapacity int `env:"DEFAULT_CAPACITY" default:"20"`
	// Routing stages: the primary owner alone, then with the backup owner;
	// skills stop mattering after SkillWait.
	OwnerWait  time.Duration `env:"OWNER_WAIT" default:"30m"`
	BackupWait time.Duration `env:"BACKUP_WAIT" default:"30m"`
	SkillWait  time.Duration `env:"SKILL_WAIT" default:"30m"`
	// SeverityRoles: the role each severity needs (seed 000).
	SeverityRoles string `env:"SEVERITY_ROLES" default:"urgent=leader,major=deputy"`
	// Tiers: customer tiers first in the queue, in order.
	Tiers string `env:"TIERS" default:"key"`
	// DefaultDeadline: the deadline after the due time when VisitDue has none (seed 003: 48 h).
	DefaultDeadline time.Duration `env:"DEFAULT_DEADLINE" default:"48h"`
	// Retry rules per channel: disposition=DELAY/MAX_ATTEMPTS. A channel
	// without rules uses the phone's.
	RetryPhone  string `env:"RETRY_PHONE" default:"no_answer=2h/3,busy=2h/3"`
	RetryOnsite string `env:"RETRY_ONSITE"`
	RetryWeb    string `env:"RETRY_WEB"`
	// ClaimPoll: how often a long-poll claim looks again.
	ClaimPoll time.Duration `env:"CLAIM_POLL" default:"1s"`
	// SLA clock.
	SLAWarn  time.Duration `env:"SLA_WARN" default:"6h"`
	SLAEvery time.Duration `env:"SLA_EVERY" default:"1m"`
	// Automatic channels.
	SMSSender    string        `env:"SMS_SENDER" default:"local"`
	EmailSender  string        `env:"EMAIL_SENDER" default:"local"`
	SendEvery    time.Duration `env:"SEND_EVERY" default:"1s"`
	SendLease    time.Duration `env:"SEND_LEASE" default:"2m"`
	SendBackoff  time.Duration `env:"SEND_BACKOFF" default:"1m"`
	SendMaxTries int           `env:"SEND_MAX_TRIES" default:"5"`
	SendBatch    int           `env:"SEND_BATCH" default:"50"`
	// Telnyx (SMS_SENDER=telnyx).
	TelnyxBaseURL    string `env:"TELNYX_BASE_URL" default:"https://api.telnyx.com"`
	TelnyxAPIKey     string `env:"TELNYX_API_KEY,secret"`
	TelnyxFrom       string `env:"TELNYX_FROM"`
	TelnyxProfileID  string `env:"TELNYX_MESSAGING_PROFILE_ID"`
	TelnyxWebhookURL string `env:"TELNYX_WEBHOOK_URL"`
	// TelnyxPublicKey is the account's Ed25519 public key (base64, from
	// Telnyx's portal): webhooks at RECEIPT_ADDR must be signed by it.
	TelnyxPublicKey string `env:"TELNYX_PUBLIC_KEY"`
	// Resend (EMAIL_SENDER=resend).
	ResendBaseURL string `env:"RESEND_BASE_URL" default:"https://api.resend.com"`
	ResendAPIKey  string `env:"RESEND_API_KEY,secret"`
	ResendFrom    string `env:"RESEND_FROM"`
	ResendReplyTo string `env:"RESEND_REPLY_TO"`
	// ReceiptAddr serves providers' delivery webhooks (POST /receipts/telnyx),
	// signed by TELNYX_PUBLIC_KEY's account; empty: off.
	ReceiptAddr string `env:"RECEIPT_ADDR"`
	// FeedbackAddr is feedback's gRPC address: GetTaskContext reads the
	// questionnaire of a visit's policy there (GetPolicyQuestionnaire) on
	// dispatch's account; FeedbackCAFile is the CA of its TLS certificate
	// (unset: IntakeCAFile's, one CA signing the peers' certificates).
	FeedbackAddr   string `env:"FEEDBACK_ADDR" default:"127.0.0.1:7004"`
	FeedbackCAFile string `env:"FEEDBACK_CA_FILE"`
	// ReminderLead is how long before an appointment its reminder SMS is
	// meant to go out (placed in the customer's contact windows);
	// ReminderMinGap the least time left before the start for one to go.
	ReminderLead   time.Duration `env:"REMINDER_LEAD" default:"24h"`
	ReminderMinGap time.Duration `env:"REMINDER_MIN_GAP" default:"1h"`
}

// settings are the parsed forms of the config's strings.
type settings struct {
	rules task.Rules
	retry task.RetryPolicy
	// telnyxKey verifies the receipts webhook (RECEIPT_ADDR).
	telnyxKey ed25519.PublicKey
}

func (c config) parse() (settings, error) {
	var errs []error
	positive := map[string]time.Duration{"LEASE": c.Lease, "CLAIM_POLL": c.ClaimPoll, "SLA_EVERY": c.SLAEvery,
		"SEND_EVERY": c.SendEvery, "SEND_LEASE": c.SendLease, "SEND_BACKOFF": c.SendBackoff,
		"REMINDER_LEAD": c.ReminderLead, "REMINDER_MIN_GAP": c.ReminderMinGap}
	for name, d := range positive {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", name, d))
		}
	}
	if c.SendMaxTries < 1 || c.SendBatch < 1 || c.DefaultCapacity < 0 {
		errs = append(errs, fmt.Errorf("SEND_MAX_TRIES and SEND_BATCH must be at least 1, DEFAULT_CAPACITY not negative"))
	}
	s := settings{rules: task.Rules{SeverityRoles: map[typesv1.Severity]string{}, DefaultDeadline: c.DefaultDeadline}, retry: task.RetryPolicy{}}
	for part := range strings.SplitSeq(c.SeverityRoles, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		sev, role, _ := strings.Cut(part, "=")
		sv, ok1 := enum.Parse[typesv1.Severity](sev)
		r, ok2 := task.ParseRole(role)
		if !ok1 || !ok2 {
			errs = append(errs, fmt.Errorf("SEVERITY_ROLES: %q is not severity=role", part))
			continue
		}
		s.rules.SeverityRoles[sv] = r
	}
	for tier := range strings.SplitSeq(c.Tiers, ",") {
		if tier = strings.TrimSpace(tier); tier != "" {
			s.rules.Tiers = append(s.rules.Tiers, tier)
		}
	}
	for _, r := range []struct {
		name string
		ch   typesv1.Channel
		spec string
	}{{"RETRY_PHONE", typesv1.Channel_CHANNEL_PHONE, c.RetryPhone}, {"RETRY_ONSITE", typesv1.Channel_CHANNEL_ONSITE, c.RetryOnsite},
		{"RETRY_WEB", typesv1.Channel_CHANNEL_WEB, c.RetryWeb}} {
		if strings.TrimSpace(r.spec) == "" {
			continue
		}
		rules, err := task.ParseRetryRules(r.spec)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.name, err))
			continue
		}
		s.retry[r.ch] = rules
	}
	if c.SMSSender != "local" && c.SMSSender != "telnyx" {
		errs = append(errs, fmt.Errorf("SMS_SENDER must be local or telnyx, got %q", c.SMSSender))
	}
	if c.SMSSender == "telnyx" && c.TelnyxAPIKey == "" {
		errs = append(errs, fmt.Errorf("TELNYX_API_KEY is required with SMS_SENDER=telnyx"))
	}
	switch {
	case c.ReceiptAddr != "" && strings.TrimSpace(c.TelnyxPublicKey) == "":
		errs = append(errs, fmt.Errorf("TELNYX_PUBLIC_KEY is required with RECEIPT_ADDR: a delivery receipt is taken only when Telnyx signed it"))
	case strings.TrimSpace(c.TelnyxPublicKey) != "":
		key, err := sender.ParseTelnyxPublicKey(c.TelnyxPublicKey)
		if err != nil {
			errs = append(errs, fmt.Errorf("TELNYX_PUBLIC_KEY: %w", err))
		}
		s.telnyxKey = key
	}
	if c.EmailSender != "local" && c.EmailSender != "resend" {
		errs = append(errs, fmt.Errorf("EMAIL_SENDER must be local or resend, got %q", c.EmailSender))
	}
	if c.EmailSender == "resend" && (c.ResendAPIKey == "" || c.ResendFrom == "") {
		errs = append(errs, fmt.Errorf("RESEND_API_KEY and RESEND_FROM are required with EMAIL_SENDER=resend"))
	}
	if len(errs) > 0 {
		return settings{}, fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return s, nil
}

// retired are variables dispatch no longer reads, and what took their place.
var retired = map[string]string{
	"CONTACT_WINDOWS": "the tenant's contact policy (SchedulerService.SetContactPolicy) sets the contact windows; " +
		"dispatch places attempts with the calendar each VisitDue carries",
}

// warnRetired logs one warning for each retired variable still set.
func warnRetired(log *slog.Logger, lookup pkgconfig.Lookup) {
	for name, instead := range retired {
		if v, ok := lookup(name); ok && strings.TrimSpace(v) != "" {
			log.Warn(name+" is set but no longer read", "variable", name, "instead", instead)
		}
	}
}
