package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/ingest"
	"github.com/huifang/huifang/services/intake/internal/store"
)

// IngestService is one completed service an upstream system reports.
type IngestService struct {
	Event *eventsv1.ServiceCompleted
	// Source names the way it came for rejected_events ("grpc", "http").
	Source string
	// Unknown are the JSON keys of the payload that are no field of the
	// event (ingest.UnknownJSON): the decoder dropped them, the answer and
	// the metric tell.
	Unknown []string
	// Ingress, when set, is the durable of the NATS ingress consumer whose
	// handler applies the event, keyed by its source ids (inbox.Consumer.Keyed:
	// the consumer keeps no inbox row of its own for it). An event that
	// consumer applied before is then a duplicate before it is checked, as
	// its inbox row made it: the service it stored says so, or, when it
	// stored none (a duplicate of a complaint, or of a service stored
	// through the API), the inbox entry it claimed then (inbox.Claim).
	Ingress string
}

// Ingested is what ingesting one event did.
type Ingested struct {
	ServiceID, CustomerID string
	// Duplicate is true when the event was seen before (the same source
	// ids, or the same complaint through another channel) and nothing changed.
	Duplicate bool
	// Invalid is set when IngestService refused the event; RejectedID names
	// its row in rejected_events.
	Invalid    *invalid.Error
	RejectedID string
	// Warnings name the fields of a stored event that intake did not use:
	// set by Huifang, unknown, or the upstream tier a rule overrode.
	Warnings []ingest.Warning
}

// IngestService validates and stores one event in a transaction of its own.
// A refused event is recorded with the refused ones (rejected_events and the
// dead letter, under in.Source) and reported in Ingested.Invalid; the error
// is for failures only. An event larger than the limit (EventLimit, its
// protobuf encoding) is refused at the door and not recorded: the caller
// holds it, and a copy of it is what must not travel onward.
func (a *App) IngestService(ctx context.Context, in IngestService) (Ingested, error) {
	if err := ingest.CheckSize(proto.Size(in.Event), a.EventLimit()); err != nil {
		return Ingested{Invalid: asInvalid(err)}, nil
	}
	var out Ingested
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		// In a savepoint: a refusal found after the archive was written
		// (the events it would publish are too large) leaves nothing but
		// the rejected row.
		err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
			var err error
			out, err = a.IngestServiceTx(ctx, sp, in)
			return err
		})
		bad, ok := invalid.As(err)
		if !ok {
			return err
		}
		out = Ingested{Invalid: bad}
		out.RejectedID, err = a.rejectEventTx(ctx, tx, in.Source, in.Event, bad)
		return err
	})
	return out, err
}

// IngestServiceTx validates and stores one event within tx (the NATS
// ingress's inbox transaction, say): the customer created or merged by the
// archive's rule with its tier re-evaluated, the service, ServiceCompleted
// and, when the customer changed, CustomerUpdated. A resend of the same
// (tenant, source_system, source_event_id), or the same complaint reference
// for the same customer through another channel (seed 000), changes
// nothing. A refused event is returned as its *invalid.Error: the caller
// records it (the inbox dead-letters it). An event larger than the limit
// (EventLimit, its protobuf encoding), or one whose ServiceCompleted or
// CustomerUpdated would be (the customer as archived may be larger than the
// one it sent), is refused (payload: must be at most N bytes). The latter
// is found after writes to tx: on any error the caller rolls tx back (the
// inbox does) or runs the call in a savepoint (IngestService does).
//
// Within a context PrepareIngest made (a batch of the NATS ingress), the
// event is decided on the batch's state and written with the batch's.
func (a *App) IngestServiceTx(ctx context.Context, tx pgx.Tx, in IngestService) (Ingested, error) {
	var out Ingested
	var err error
	if b, ok := ctx.Value(ingestSetKey{}).(*ingestSet); ok {
		out, err = a.ingestInSet(ctx, tx, b, in)
	} else {
		out, err = a.ingestTx(ctx, tx, in)
	}
	if err == nil && len(out.Warnings) > 0 {
		a.ignored(ctx, in.Event, out)
	}
	return out, refusedAs("payload", err)
}

func (a *App) ingestTx(ctx context.Context, tx pgx.Tx, in IngestService) (Ingested, error) {
	ev := in.Event
	if err := ingest.CheckSize(proto.Size(ev), a.EventLimit()); err != nil {
		return Ingested{}, err
	}
	ingest.Normalize(ev)
	var out Ingested
	var err error
	var stored store.StoredService
	if in.Ingress != "" {
		key := sourceKey(ev)
		seen, err := a.Store.ServicesBySource(ctx, tx, in.Ingress, []store.IngressKey{{SourceKey: key, Inbox: inbox.EventIDFrom(ctx)}})
		if err != nil {
			return Ingested{}, err
		}
		if stored = seen[key]; stored.ViaIngress || stored.Claimed {
			return Ingested{ServiceID: stored.ServiceID, CustomerID: stored.CustomerID, Duplicate: true}, nil
		}
	}
	if err := a.validate(ctx, tx, ev); err != nil {
		return Ingested{}, err
	}
	if in.Ingress != "" {
		if stored.ServiceID != "" {
			return a.claimDuplicate(ctx, tx, Ingested{ServiceID: stored.ServiceID, CustomerID: stored.CustomerID, Duplicate: true})
		}
	} else {
		out.ServiceID, out.CustomerID, err = a.Store.ServiceBySource(ctx, tx, ev.TenantId, ev.SourceSystem, ev.SourceEventId)
		switch {
		case err == nil:
			out.Duplicate = true
			return out, nil
		case !errors.Is(err, store.ErrNotFound):
			return Ingested{}, err
		}
	}

	input, ref := ingest.CustomerInput(ev), ingest.ComplaintRef(ev)
	var changed []string
	cust, err := a.Store.UpsertCustomer(ctx, tx, ev.TenantId, ev.Customer.ExternalId, input.SourceUpdatedAt, func(c *archive.Customer, created bool) (bool, error) {
		out.CustomerID = c.ID
		if ref != "" && !created {
			id, err := a.Store.ServiceByComplaint(ctx, tx, c.TenantID, c.ID, ref)
			if err == nil {
				out.ServiceID, out.Duplicate = id, true
				return false, nil
			}
			if !errors.Is(err, store.ErrNotFound) {
				return false, err
			}
		}
		changed = archive.Merge(&c.Record, input)
		if created {
			changed = append([]string{archive.FieldCreated}, changed...)
		}
		out.ServiceID = outbox.NewEventID()
		add := a.Store.AddService
		if in.Ingress != "" {
			add = a.Store.AddIngressService
		}
		if err := add(ctx, tx, out.ServiceID, c.ID, ev); err != nil {
			return false, err
		}
		var err error
		changed, err = a.settle(ctx, tx, c, changed)
		return len(changed) > 0, err
	})
	if err != nil {
		return out, err
	}
	if out.Duplicate {
		if in.Ingress != "" {
			return a.claimDuplicate(ctx, tx, out)
		}
		return out, nil
	}
	// Preferences an upstream system sends come with the service, whose
	// record names the system and its event (and the scheduler's opt_outs
	// the service): no audit entry per ingested event.
	if err := a.announce(ctx, tx, cust, changed, ""); err != nil {
		return out, err
	}
	done := proto.CloneOf(ev)
	done.ServiceId = out.ServiceID
	done.EventId = outbox.NewEventID()
	done.Customer = cust.Proto()
	if err := a.add(ctx, tx, stream.SubjectServiceCompleted, done.EventId, done); err != nil {
		return out, err
	}
	out.Warnings = warnings(in, cust)
	return out, nil
}

// claimDuplicate returns out, the duplicate an event of the NATS ingress
// (IngestService.Ingress) is of a service the ingress did not store for it,
// once the event's inbox entry is claimed (inbox.Claim): the service does not
// say that the ingress applied the event, the entry does.
func (a *App) claimDuplicate(ctx context.Context, tx pgx.Tx, out Ingested) (Ingested, error) {
	if _, err := inbox.Claim(ctx, tx); err != nil {
		return Ingested{}, err
	}
	return out, nil
}

// sourceKey is the source ids of a normalized event.
func sourceKey(ev *eventsv1.ServiceCompleted) store.SourceKey {
	return store.SourceKey{Tenant: ev.TenantId, System: ev.SourceSystem, EventID: ev.SourceEventId}
}

// warnings are what an ingested event's caller is told it sent in vain:
// the fields Huifang ignores, the unknown ones, and an upstream tier a tier
// rule overrode on the customer c became.
func warnings(in IngestService, c *archive.Customer) []ingest.Warning {
	ev := in.Event
	out := append(ingest.Ignored(ev), ingest.UnknownWarnings(in.Unknown)...)
	if t := ev.Customer.Tier; t != "" && c.UpstreamTier == t && c.Tier != t {
		out = append(out, ingest.Warning{Field: "customer.tier",
			Reason: fmt.Sprintf("%q is overridden by a tier rule (TIER_RULES, override): the customer's tier is %q", t, c.Tier)})
	}
	return out
}

// validate checks a normalized event against the rules, with the tenant's
// own service types beside the built-in ones (read only for an event that
// names no built-in type: most name one, and a tenant's types change
// nothing about those).
func (a *App) validate(ctx context.Context, q postgres.Querier, ev *eventsv1.ServiceCompleted) error {
	var extra []string
	if ev.ServiceType != "" && tenant.Valid(ev.TenantId) && !slices.Contains(ingest.ServiceTypes(), ev.ServiceType) {
		types, err := a.Store.ServiceTypes(ctx, q, ev.TenantId)
		if err != nil {
			return err
		}
		for _, t := range types {
			extra = append(extra, t.Name)
		}
	}
	return ingest.Validate(ev, a.Now(), extra...)
}

// rejectEventTx records a refused event (as protobuf, under its tenant when
// that is well formed) with the refused inputs and on the dead-letter subject.
func (a *App) rejectEventTx(ctx context.Context, tx pgx.Tx, source string, ev *eventsv1.ServiceCompleted, bad *invalid.Error) (string, error) {
	raw, err := proto.Marshal(ev)
	if err != nil {
		return "", fmt.Errorf("app: keep the refused event: %w", err)
	}
	t := ev.TenantId
	if !tenant.Valid(t) {
		t = tenant.Default
	}
	return a.rejectTx(ctx, tx, t, RejectRaw{Source: source, ContentType: stream.ContentTypeProtobuf, Payload: raw, Err: bad})
}

// RejectRaw is an input refused before it was an event (a body that is not
// JSON of the shape, say).
type RejectRaw struct {
	// Tenant is the tenant the input came from: the caller's (the webhook's
	// token). Blank or malformed: the default tenant. It is the tenant that
	// may list and replay the input, and the tenant a replay keeps.
	Tenant string
	// Source names the way it came ("http").
	Source, ContentType string
	Payload             []byte
	Err                 *invalid.Error
}

// RejectRaw records a refused input with the refused ones (under in.Tenant:
// the input names none that can be read) and on the dead-letter subject; it
// returns its row id.
func (a *App) RejectRaw(ctx context.Context, in RejectRaw) (string, error) {
	var id string
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		id, err = a.RejectRawTx(ctx, tx, in)
		return err
	})
	return id, err
}

// RejectRawTx is RejectRaw within the caller's transaction.
func (a *App) RejectRawTx(ctx context.Context, tx pgx.Tx, in RejectRaw) (string, error) {
	t := strings.TrimSpace(in.Tenant)
	if !tenant.Valid(t) {
		t = tenant.Default
	}
	return a.rejectTx(ctx, tx, t, in)
}

// rejectTx writes the refused input, its payload sealed at rest (seeds 000,
// 001); the dead letter carries it as it came.
func (a *App) rejectTx(ctx context.Context, tx pgx.Tx, tenantID string, in RejectRaw) (string, error) {
	return inbox.Reject(ctx, tx, inbox.Rejection{Service: Service, Tenant: tenantID, Source: in.Source,
		ContentType: in.ContentType, Payload: in.Payload, Err: in.Err, Seal: a.Store.SealPayload})
}

// Seal is intake's inbox.Sealer: what rejected_events keeps of a refused
// payload (sealed with the current key).
func (a *App) Seal(ctx context.Context, payload []byte) ([]byte, error) {
	return a.Store.SealPayload(ctx, payload)
}
