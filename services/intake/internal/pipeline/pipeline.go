// Package pipeline is the one way into intake: every path (NATS ingress, gRPC
// single and batch, the HTTP webhook, replays of rejected inputs) ends in the
// same validation and the same stored result.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/intake/internal/ingest"
	"github.com/huifang/huifang/services/intake/internal/store"
)

// ErrConflict says the same event or customer was being stored concurrently; retry.
var ErrConflict = errors.New("the same event or customer is being stored concurrently; retry")

// ErrAlreadyReplayed says a rejected input was already replayed and stored.
var ErrAlreadyReplayed = errors.New("already replayed")

// Pipeline validates and stores completed services.
type Pipeline struct {
	Store *store.Store
	// Relay, when set, is woken after each commit.
	Relay *outbox.Relay
	Now   func() time.Time
}

// HandleMessage is the NATS ingress handler: it runs inside the inbox's
// transaction; an *invalid.Error dead-letters the message.
func (p *Pipeline) HandleMessage(ctx context.Context, tx pgx.Tx, contentType string, data []byte) error {
	ev, err := ingest.Decode(contentType, data)
	if err != nil {
		return err
	}
	ingest.Normalize(ev)
	if err := p.validate(ctx, tx, ev); err != nil {
		return err
	}
	_, err = p.Store.Ingest(ctx, tx, ev)
	return err
}

func (p *Pipeline) validate(ctx context.Context, tx pgx.Tx, ev *eventsv1.ServiceCompleted) error {
	var extra []string
	if ev.ServiceType != "" && ingest.ValidTenant(ev.TenantId) {
		var err error
		if extra, err = store.TenantTypes(ctx, tx, ev.TenantId); err != nil {
			return err
		}
	}
	return ingest.Validate(ev, p.Now(), extra...)
}

// Outcome is what ingesting one event through the API did.
type Outcome struct {
	store.Result
	// Invalid is set when the event was refused; RejectedID names its row in rejected_events.
	Invalid    *invalid.Error
	RejectedID string
}

// Ingest validates and stores one event that arrived through the API (source
// "grpc" or "http"). A refused event is recorded with the rejected ones (and
// dead-lettered) and reported in Outcome.Invalid; err is for failures only.
func (p *Pipeline) Ingest(ctx context.Context, ev *eventsv1.ServiceCompleted, source string) (Outcome, error) {
	var out Outcome
	ingest.Normalize(ev)
	err := pgx.BeginFunc(ctx, p.Store.Pool, func(tx pgx.Tx) error {
		verr := p.validate(ctx, tx, ev)
		if verr != nil {
			bad, ok := invalid.As(verr)
			if !ok {
				return verr
			}
			raw, err := proto.Marshal(ev)
			if err != nil {
				return fmt.Errorf("pipeline: keep the refused event: %w", err)
			}
			tenant := ev.TenantId
			if !ingest.ValidTenant(tenant) {
				tenant = ingest.DefaultTenant
			}
			out.Invalid = bad
			out.RejectedID, err = inbox.Reject(ctx, tx, inbox.Rejection{Service: "intake", Tenant: tenant, Source: source,
				ContentType: stream.ContentTypeProtobuf, Payload: raw, Err: bad, Seal: p.Store.SealPayload})
			return err
		}
		var err error
		out.Result, err = p.Store.Ingest(ctx, tx, ev)
		return err
	})
	if postgres.IsUniqueViolation(err) {
		return out, ErrConflict
	}
	if err != nil {
		return out, err
	}
	p.Notify()
	return out, nil
}

// Replay runs a rejected input through ingestion again: fixed when given,
// else the stored payload as it is. An input that still breaks a rule is
// answered with the *invalid.Error and left as it was; a stored one is
// marked replayed, once.
func (p *Pipeline) Replay(ctx context.Context, tenant, id string, fixed *eventsv1.ServiceCompleted) (store.Result, error) {
	var res store.Result
	err := pgx.BeginFunc(ctx, p.Store.Pool, func(tx pgx.Tx) error {
		rej, err := p.Store.LockRejected(ctx, tx, tenant, id)
		if err != nil {
			return err
		}
		if rej.ReplayedAt != nil {
			res.ServiceID = rej.ReplayedServiceID
			return ErrAlreadyReplayed
		}
		ev := fixed
		if ev == nil {
			if rej.OpenErr != nil {
				return rej.OpenErr
			}
			if ev, err = ingest.Decode(rej.ContentType, rej.Payload); err != nil {
				return err
			}
		}
		ingest.Normalize(ev)
		if err := p.validate(ctx, tx, ev); err != nil {
			return err
		}
		if res, err = p.Store.Ingest(ctx, tx, ev); err != nil {
			return err
		}
		return store.MarkReplayed(ctx, tx, rej.ID, res.ServiceID, p.Now())
	})
	if postgres.IsUniqueViolation(err) {
		return res, ErrConflict
	}
	if err != nil {
		return res, err
	}
	p.Notify()
	return res, nil
}

// IngressConsumer is the NATS ingress consumer (durable intake-ingress) with
// this pipeline as its handler: refused messages are recorded with their
// tenant when it can be read, their payload sealed at rest. The runtime
// fills in the pool, the connection and the log.
func (p *Pipeline) IngressConsumer() *inbox.Consumer {
	return &inbox.Consumer{
		Service:  "intake",
		Durable:  "intake-ingress",
		Stream:   stream.IngressStream,
		Subjects: []string{stream.SubjectIngressServiceCompleted},
		Handle: func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
			return p.HandleMessage(ctx, tx, msg.Headers().Get(stream.HeaderContentType), msg.Data())
		},
		Tenant: func(msg jetstream.Msg) string {
			if ev, err := ingest.Decode(msg.Headers().Get(stream.HeaderContentType), msg.Data()); err == nil && ingest.ValidTenant(ev.TenantId) {
				return ev.TenantId
			}
			return ""
		},
		Seal: p.Store.SealPayload,
	}
}

// Notify wakes the outbox relay, when there is one, after a commit.
func (p *Pipeline) Notify() {
	if p.Relay != nil {
		p.Relay.Notify()
	}
}

// RejectRaw records an input that did not even decode (source "http", say)
// with the rejected ones and on the dead-letter subject; it returns the row id.
func (p *Pipeline) RejectRaw(ctx context.Context, source, contentType string, payload []byte, bad *invalid.Error) (string, error) {
	var id string
	err := pgx.BeginFunc(ctx, p.Store.Pool, func(tx pgx.Tx) error {
		var err error
		id, err = inbox.Reject(ctx, tx, inbox.Rejection{Service: "intake", Tenant: ingest.DefaultTenant, Source: source,
			ContentType: contentType, Payload: payload, Err: bad, Seal: p.Store.SealPayload})
		return err
	})
	if err != nil {
		return "", err
	}
	p.Notify()
	return id, nil
}
