// Package stream holds Huifang's JetStream conventions: the three streams,
// the headers every message carries, and connecting with backoff.
package stream

import (
	"context"
	"fmt"
	"log/slog"
	neturl "net/url"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/huifang/huifang/pkg/loop"
	"github.com/huifang/huifang/pkg/telemetry"
)

// Stream names and the subjects they hold.
const (
	IngressStream = "HUIFANG_INGRESS"
	EventsStream  = "HUIFANG_EVENTS"
	DLQStream     = "HUIFANG_DLQ"

	IngressSubjects = "huifang.ingress.>"
	EventsSubjects  = "huifang.events.>"
	DLQSubjects     = "huifang.deadletter.>"
)

// Subjects of the events.
const (
	SubjectIngressServiceCompleted = "huifang.ingress.service.completed"
	SubjectServiceCompleted        = "huifang.events.service.completed"
	SubjectVisitPlanned            = "huifang.events.visit.planned"
	SubjectVisitDue                = "huifang.events.visit.due"
	SubjectVisitAssigned           = "huifang.events.visit.assigned"
	SubjectVisitLogged             = "huifang.events.visit.logged"
	SubjectComplaintEscalated      = "huifang.events.complaint.escalated"
	SubjectCustomerUpdated         = "huifang.events.customer.updated"
	// SubjectCustomerErased carries the CustomerUpdated of an erasure
	// again, for consumers that keep masked forms but need no other
	// change of the archive (analytics).
	SubjectCustomerErased        = "huifang.events.customer.erased"
	SubjectVisitCancelled        = "huifang.events.visit.cancelled"
	SubjectVisitAttempted        = "huifang.events.visit.attempted"
	SubjectVisitUnreachable      = "huifang.events.visit.unreachable"
	SubjectContactOptedOut       = "huifang.events.contact.opted_out"
	SubjectFollowUpRequested     = "huifang.events.followup.requested"
	SubjectComplaintAcknowledged = "huifang.events.complaint.acknowledged"
	SubjectComplaintResolved     = "huifang.events.complaint.resolved"
	SubjectComplaintReopened     = "huifang.events.complaint.reopened"
	SubjectComplaintClosed       = "huifang.events.complaint.closed"
	SubjectReviewSubmitted       = "huifang.events.review.submitted"
	// SubjectImprovementPlanSet and SubjectImprovementMeasureCompleted
	// carry seed 003's improvement plans (ids, counts and times only).
	SubjectImprovementPlanSet          = "huifang.events.improvement.plan_set"
	SubjectImprovementMeasureCompleted = "huifang.events.improvement.measure_completed"
	SubjectTargetBreached              = "huifang.events.target.breached"
	SubjectVisitOverdue                = "huifang.events.visit.overdue"
	// SubjectMessageSent and SubjectAppointmentChanged are dispatch's: a
	// message to a customer, and an on-site visit agreed, moved or cancelled.
	SubjectMessageSent        = "huifang.events.message.sent"
	SubjectAppointmentChanged = "huifang.events.appointment.changed"
)

// Of returns the stream that holds subject ("" for a subject outside them).
func Of(subject string) string {
	for _, s := range []struct{ name, prefix string }{
		{IngressStream, strings.TrimSuffix(IngressSubjects, ">")},
		{EventsStream, strings.TrimSuffix(EventsSubjects, ">")},
		{DLQStream, strings.TrimSuffix(DLQSubjects, ">")},
	} {
		if strings.HasPrefix(subject, s.prefix) {
			return s.name
		}
	}
	return ""
}

// DeadLetterSubject is where a service puts the messages it cannot take.
func DeadLetterSubject(service string) string { return "huifang.deadletter." + service }

// Header names.
const (
	HeaderContentType = "Content-Type"
	// HeaderReason says why a message was dead-lettered.
	HeaderReason = "Huifang-Reason"
	// HeaderField names the field that broke a rule, when one did.
	HeaderField = "Huifang-Field"
	// HeaderOrigSubject is the subject a dead-lettered message first came on.
	HeaderOrigSubject = "Huifang-Original-Subject"
	HeaderService     = "Huifang-Service"
	// HeaderRejectedID names the rejected_events row that keeps a dead letter.
	HeaderRejectedID = "Huifang-Rejected-Id"
	// HeaderPayloadOmitted says that a dead letter's payload was too large
	// to carry, and where it is kept.
	HeaderPayloadOmitted = "Huifang-Payload-Omitted"

	ContentTypeProtobuf = "application/protobuf"
	ContentTypeJSON     = "application/json"
)

// Config is how streams are provisioned.
type Config struct {
	// Replicas is 1 on one server and 3 in a cluster.
	Replicas int
	// MaxAge bounds how long messages are kept; zero keeps them for ever.
	MaxAge time.Duration
	// DuplicateWindow is how long JetStream remembers Nats-Msg-Id values.
	DuplicateWindow time.Duration
}

// Connect dials NATS, retrying with backoff until ctx ends, and returns the
// connection and its JetStream context.
func Connect(ctx context.Context, log *slog.Logger, url, name string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	delay := 100 * time.Millisecond
	trouble := &loop.Trouble{Log: log, What: "nats " + redacted(url)}
	for {
		nc, err := nats.Connect(url, append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				log.Warn("disconnected from NATS; reconnecting", "err", err)
			}),
			nats.ReconnectHandler(func(nc *nats.Conn) {
				log.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted())
			})}, opts...)...)
		if err == nil {
			trouble.OK(ctx)
			js, err := jetstream.New(nc)
			if err != nil {
				nc.Close()
				return nil, nil, fmt.Errorf("stream: jetstream: %w", err)
			}
			return nc, js, nil
		}
		trouble.Fail(ctx, err)
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("stream: nats not reachable at %s: %w", redacted(url), err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// IngressDuplicateWindow is the ingress stream's window for Nats-Msg-Id:
// the least JetStream takes.
const IngressDuplicateWindow = 100 * time.Millisecond

// Ensure creates the three streams, or updates them to cfg. Every service calls
// it at start, so the first one up provisions them.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.DuplicateWindow == 0 {
		cfg.DuplicateWindow = 2 * time.Minute
	}
	for _, s := range []jetstream.StreamConfig{
		{Name: IngressStream, Subjects: []string{IngressSubjects}},
		{Name: EventsStream, Subjects: []string{EventsSubjects}},
		{Name: DLQStream, Subjects: []string{DLQSubjects}},
	} {
		s.Storage = jetstream.FileStorage
		s.Retention = jetstream.LimitsPolicy
		s.Replicas = cfg.Replicas
		s.MaxAge = cfg.MaxAge
		s.Duplicates = cfg.DuplicateWindow
		// The outbox relays publish a round's events as one atomic batch
		// (nats-server 2.12 or later).
		s.AllowAtomicPublish = true
		if s.Name == IngressStream {
			// Upstream systems name their events themselves, and intake drops
			// resends by tenant, source system and the source's event id; a
			// window on the upstream Nats-Msg-Id would only drop the events of
			// two systems whose ids collide.
			s.Duplicates = IngressDuplicateWindow
		}
		if existing, err := js.Stream(ctx, s.Name); err == nil && sameConfig(existing.CachedInfo().Config, s) {
			// Already as wanted: services starting together do not update it again.
			continue
		}
		if _, err := js.CreateOrUpdateStream(ctx, s); err != nil {
			return fmt.Errorf("stream: provision %s: %w", s.Name, err)
		}
	}
	return nil
}

func sameConfig(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.Storage == want.Storage && have.Retention == want.Retention &&
		have.Replicas == want.Replicas && have.MaxAge == want.MaxAge && have.Duplicates == want.Duplicates &&
		have.AllowAtomicPublish == want.AllowAtomicPublish
}

// InjectTrace writes the trace context of ctx into NATS headers.
func InjectTrace(ctx context.Context, h nats.Header) {
	telemetry.Propagator().Inject(ctx, headerCarrier(h))
}

// ExtractTrace returns ctx with the trace context carried in NATS headers.
func ExtractTrace(ctx context.Context, h nats.Header) context.Context {
	return telemetry.Propagator().Extract(ctx, headerCarrier(h))
}

// headerCarrier adapts NATS headers, which keep keys as written, to the
// propagator: it writes the W3C names in lower case and reads them in any case.
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string {
	if v := nats.Header(c).Get(key); v != "" {
		return v
	}
	for k, vs := range c {
		if strings.EqualFold(k, key) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

func (c headerCarrier) Set(key, value string) {
	for k := range c {
		if strings.EqualFold(k, key) {
			delete(c, k)
		}
	}
	nats.Header(c).Set(strings.ToLower(key), value)
}

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// redacted is a NATS URL list without passwords, for logs and errors.
func redacted(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := neturl.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}
