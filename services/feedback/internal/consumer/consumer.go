// Package consumer holds feedback's JetStream consumers, thin adapters
// over the app: it learns the visits that fell due from VisitDue, so that
// records can be logged against them, who each visit is assigned to from
// VisitAssigned, so that only that agent logs it, and the customers intake
// erased from CustomerUpdated, whose free text it redacts. Each decodes its
// event (inbox.Of), turns it into the domain's value and runs one app
// command in the inbox's transaction. None keeps an inbox entry for every
// event: their effects are keyed by the event or gated by a version
// (inbox.Consumer.Idempotent).
package consumer

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/feedback/internal/app"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

// Durable names of the consumers.
const (
	VisitDueDurable        = "feedback-visit-due"
	VisitAssignedDurable   = "feedback-visit-assigned"
	CustomerUpdatedDurable = "feedback-customer-updated"
)

// New returns the service's consumers, for app.Runtime.Consume.
func New(a *app.App) []*inbox.Consumer {
	return []*inbox.Consumer{VisitDue(a), VisitAssigned(a), CustomerUpdated(a)}
}

// CustomerUpdated returns the consumer that hears intake's erasures
// (CustomerUpdated with erased set) and redacts the free text kept about
// the customer (app.ForgetCustomerTx); other changes of a customer concern
// feedback not. An erasure without a customer id is dead-lettered. Only
// erasures keep an inbox entry (inbox.Consumer.Idempotent, inbox.Claim):
// the redaction's audit entry is written once per erasure; the other
// updates change nothing and keep none.
func CustomerUpdated(a *app.App) *inbox.Consumer {
	c := inbox.Of(CustomerUpdatedDurable, stream.SubjectCustomerUpdated, func(ctx context.Context, tx pgx.Tx, ev *eventsv1.CustomerUpdated) error {
		if !ev.GetErased() {
			return nil
		}
		id := strings.TrimSpace(ev.GetCustomer().GetId())
		if id == "" {
			return invalid.New("customer.id", "is required")
		}
		first, err := inbox.Claim(ctx, tx)
		if err != nil || !first {
			return err
		}
		return a.ForgetCustomerTx(ctx, tx, tenant.Of(ev), id)
	})
	c.Idempotent = true
	return c
}

// VisitDue returns the consumer that stores the context of each visit
// that fell due (app.LearnVisitTx: a batch's visits are stored in one
// statement before it commits). Undecodable events and events without
// a visit id are dead-lettered. It keeps no inbox entries
// (inbox.Consumer.Idempotent): a visit keeps the id of the VisitDue that
// stored it, and a batch reads those of its visits at once under their
// locks (app.PrepareVisits); another VisitDue of a stored visit is claimed
// in the inbox (app/keyed.go). The runtime fills in the pool, JetStream
// and logger.
func VisitDue(a *app.App) *inbox.Consumer {
	c := inbox.Of(VisitDueDurable, stream.SubjectVisitDue, func(ctx context.Context, tx pgx.Tx, ev *eventsv1.VisitDue) error {
		v, err := visitOf(ev)
		if err != nil {
			return err
		}
		return a.LearnVisitTx(ctx, tx, v)
	})
	c.Idempotent = true
	c.Prepare = func(ctx context.Context, tx pgx.Tx, msgs []jetstream.Msg) (context.Context, error) {
		return a.PrepareVisits(ctx, tx, keysOf(msgs, func(ev *eventsv1.VisitDue) (visit.Key, bool) {
			v, err := visitOf(ev)
			return v.Key(), err == nil
		}))
	}
	return c
}

// VisitAssigned returns the consumer that records the agent each visit is
// assigned to (app.AssignVisitTx: a batch's assignments are stored
// in one statement before it commits): dispatch publishes VisitAssigned when
// an agent claims the visit's task and when a leader reassigns it.
// Undecodable events and events without a visit, an agent or a time are
// dead-lettered. It keeps no inbox entries (inbox.Consumer.Idempotent):
// the newest assignment wins, and a batch reads the ones its visits keep at
// once under their locks (app.PrepareAssignments); one of the same time as
// the one kept is claimed in the inbox (app/keyed.go).
func VisitAssigned(a *app.App) *inbox.Consumer {
	c := inbox.Of(VisitAssignedDurable, stream.SubjectVisitAssigned, func(ctx context.Context, tx pgx.Tx, ev *eventsv1.VisitAssigned) error {
		id := ev.GetEventId()
		if id == "" {
			id = inbox.EventIDFrom(ctx)
		}
		as, err := assignmentOf(ev, id)
		if err != nil {
			return err
		}
		return a.AssignVisitTx(ctx, tx, as)
	})
	c.Idempotent = true
	c.Prepare = func(ctx context.Context, tx pgx.Tx, msgs []jetstream.Msg) (context.Context, error) {
		return a.PrepareAssignments(ctx, tx, keysOf(msgs, func(ev *eventsv1.VisitAssigned) (visit.Key, bool) {
			as, err := assignmentOf(ev, "")
			return as.Key(), err == nil
		}))
	}
	return c
}

// keysOf returns the keys of the visits msgs are about (key reads them
// from a decoded event, false for one that is refused), their tenants as
// the app has them: what a batch reads at once.
func keysOf[E any, PE interface {
	*E
	proto.Message
}](msgs []jetstream.Msg, key func(PE) (visit.Key, bool)) []visit.Key {
	keys := make([]visit.Key, 0, len(msgs))
	for _, m := range msgs {
		ev := PE(new(E))
		if proto.Unmarshal(m.Data(), ev) != nil {
			continue
		}
		if k, ok := key(ev); ok {
			k.Tenant = tenant.Or(k.Tenant)
			keys = append(keys, k)
		}
	}
	return keys
}

// visitOf reads a VisitDue as a visit; an event without a visit id, with
// an invalid time or an unknown channel is refused.
func visitOf(ev *eventsv1.VisitDue) (visit.Visit, error) {
	v := visit.Visit{
		TenantID:    tenant.Of(ev),
		VisitID:     strings.TrimSpace(ev.GetVisitId()),
		CustomerID:  ev.GetCustomer().GetId(),
		ServiceID:   ev.GetServiceId(),
		PolicyID:    ev.GetPolicyId(),
		Channel:     ev.GetChannel(),
		OrgUnit:     ev.GetOrgUnit(),
		ServiceType: ev.GetServiceType(),
		ComplaintID: strings.TrimSpace(ev.GetComplaintId()),
	}
	if v.VisitID == "" {
		return visit.Visit{}, invalid.New("visit_id", "is required: the visit the event is about")
	}
	var l invalid.List
	v.DueAt = timeOf(&l, "due_at", ev.GetDueAt())
	v.Deadline = timeOf(&l, "deadline", ev.GetDeadline())
	v.ServiceCompletedAt = timeOf(&l, "service_completed_at", ev.GetServiceCompletedAt())
	if _, known := typesv1.Channel_name[int32(v.Channel)]; !known {
		l.Add("channel", fmt.Sprintf("unknown channel %d", v.Channel))
	}
	if err := l.Err(); err != nil {
		return visit.Visit{}, err
	}
	return v, nil
}

// assignmentOf reads a VisitAssigned (whose id is eventID) as an
// assignment. The visit, the agent and the time of the assignment are
// required: the time decides which of several assignments (a claim, then a
// reassignment) is the newest, whatever order they arrive in.
func assignmentOf(ev *eventsv1.VisitAssigned, eventID string) (visit.Assignment, error) {
	a := visit.Assignment{
		TenantID: tenant.Of(ev),
		VisitID:  strings.TrimSpace(ev.GetVisitId()),
		AgentID:  strings.TrimSpace(ev.GetAgentId()),
		EventID:  eventID,
	}
	var l invalid.List
	if a.VisitID == "" {
		l.Add("visit_id", "is required: the visit the event is about")
	}
	if a.AgentID == "" {
		l.Add("agent_id", "is required: the agent the visit is assigned to")
	}
	a.AssignedAt = timeOf(&l, "assigned_at", ev.GetAssignedAt())
	if ev.GetAssignedAt() == nil {
		l.Add("assigned_at", "is required: the newest assignment of a visit wins")
	}
	if err := l.Err(); err != nil {
		return visit.Assignment{}, err
	}
	return a, nil
}

// timeOf returns ts as a time, zero when unset; an invalid ts is a violation of field.
func timeOf(l *invalid.List, field string, ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	if err := ts.CheckValid(); err != nil {
		l.Add(field, "must be a valid timestamp")
		return time.Time{}
	}
	return ts.AsTime()
}
