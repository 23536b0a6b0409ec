package app

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/enum"
	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/intake/internal/store"
)

// The kinds of the contact ledger's entries, as stored (the short names of
// intakev1.TimelineEntryKind).
const (
	KindService               = "service"
	KindVisitPlanned          = "visit_planned"
	KindVisitDue              = "visit_due"
	KindVisitAssigned         = "visit_assigned"
	KindAttempt               = "attempt"
	KindMessage               = "message"
	KindAppointment           = "appointment"
	KindVisitLogged           = "visit_logged"
	KindVisitUnreachable      = "visit_unreachable"
	KindVisitCancelled        = "visit_cancelled"
	KindComplaintEscalated    = "complaint_escalated"
	KindComplaintAcknowledged = "complaint_acknowledged"
	KindComplaintResolved     = "complaint_resolved"
	KindComplaintReopened     = "complaint_reopened"
	KindComplaintClosed       = "complaint_closed"
	KindOptedOut              = "opted_out"
	KindFollowUpRequested     = "follow_up_requested"
	KindErased                = "erased"
)

// link is what an event says about whose a visit or complaint is.
type link struct{ kind, ref, customer string }

// ledgerEntry maps one event of the bus to its ledger entry and the links
// it teaches; ok false for an event the ledger does not keep. Only ids,
// kinds, times, channels, statuses and scores are taken: no free text
// (reasons, descriptions, comments, answers' text) and no contact.
func ledgerEntry(ev proto.Message) (e store.LedgerEntry, links []link, ok bool) {
	ch := func(c typesv1.Channel) string { return enum.Name(c) }
	at := func(ts *timestamppb.Timestamp) time.Time { return ts.AsTime() }
	opt := func(ts *timestamppb.Timestamp) *time.Time {
		if ts == nil {
			return nil
		}
		t := ts.AsTime()
		return &t
	}
	visit := func(ref, customer string) []link { return []link{{store.LinkVisit, ref, customer}} }
	switch ev := ev.(type) {
	case *eventsv1.ServiceCompleted:
		e = store.LedgerEntry{ID: ev.EventId, Tenant: ev.TenantId, Kind: KindService, At: at(ev.CompletedAt), CustomerID: ev.GetCustomer().GetId(),
			ServiceID: ev.ServiceId, ServiceType: ev.ServiceType, AgentID: ev.StaffId}
	case *eventsv1.VisitPlanned:
		e = store.LedgerEntry{ID: ev.EventId, Tenant: ev.TenantId, Kind: KindVisitPlanned, At: at(ev.DueAt), CustomerID: ev.CustomerId,
			ServiceID: ev.ServiceId, VisitID: ev.VisitId, ServiceType: ev.ServiceType, Channel: ch(ev.Channel), DueAt: opt(ev.DueAt)}
		links = visit(ev.VisitId, ev.CustomerId)
	case *eventsv1.VisitDue:
		e = store.LedgerEntry{ID: ev.EventId, Tenant: ev.TenantId, Kind: KindVisitDue, At: at(ev.DueAt), CustomerID: ev.GetCustomer().GetId(),
			ServiceID: ev.ServiceId, VisitID: ev.VisitId, ComplaintID: ev.ComplaintId, ServiceType: ev.ServiceType, Channel: ch(ev.Channel),
			Severity: enum.Name(ev.Severity), DueAt: opt(ev.DueAt)}
		links = visit(ev.VisitId, e.CustomerID)
	case *eventsv1.VisitAssigned:
		e = store.LedgerEntry{ID: ev.EventId, Tenant: ev.TenantId, Kind: KindVisitAssigned, At: at(ev.AssignedAt), VisitID: ev.VisitId, AgentID: ev.AgentId}
	case *eventsv1.VisitAttempted:
		e = store.LedgerEntry{ID: ev.EventId, Tenant: ev.TenantId, Kind: KindAttempt, At: at(ev.AttemptedAt), CustomerID: ev.CustomerId,
			VisitID: ev.VisitId, TaskID: ev.TaskId, AgentID: ev.AgentId, Channel: ch(ev.Channel), Disposition: enum.Name(ev.Disposition), Attempt: ev.Attempt}
		links = visit(ev.VisitId, ev.CustomerId)
	case *eventsv1.MessageSent:
		e = store.LedgerEntry{ID: ev.EventId, Tenant: ev.TenantId, Kind: KindMessage, At: at(ev.At), CustomerID: ev.CustomerId,
			VisitID: ev.VisitId, TaskID: ev.TaskId, MessageID: ev.MessageId, AppointmentID: ev.AppointmentId, Channel: ch(ev.Channel), Status: ev.Status}
		links = visit(ev.VisitId, ev.CustomerId)
	case *eventsv1.AppointmentChanged:
		e = store.LedgerEntry{ID: ev.EventId, Tenant: ev.TenantId, Kind: KindAppointment, At: at(ev.At), CustomerID: ev.CustomerId,
			VisitID: ev.VisitId, TaskID: ev.TaskId, AppointmentID: ev.AppointmentId, AgentID: ev.AgentId, Status: enum.Name(ev.Change),
			StartsAt: opt(ev.StartsAt), EndsAt: opt(ev.EndsAt)}
		links = visit(ev.VisitId, ev.CustomerId)
	case *eventsv1.VisitLogged:
		e = store.LedgerEntry{ID: ev.EventId, Tenant: ev.TenantId, Kind: KindVisitLogged, At: at(ev.LoggedAt), CustomerID: ev.CustomerId,
			VisitID: ev.VisitId, RecordID: ev.RecordId, ServiceID: ev.ServiceId, AgentID: ev.AgentId, Channel: ch(ev.Channel),
			ServiceType: ev.ServiceType, Status: enum.Name(ev.NoShowReason), Score: ev.Nps}
		links = visit(ev.VisitId, ev.CustomerId)
	case *eventsv1.VisitUnreachable:
		e = store.LedgerEntry{ID: ev.EventId, Tenant: ev.TenantId, Kind: KindVisitUnreachable, At: at(ev.At), CustomerID: ev.CustomerId,
			VisitID: ev.VisitId, Attempt: ev.Attempts}
		links = visit(ev.VisitId, ev.CustomerId)
	case *eventsv1.VisitCancelled:
		e = store.LedgerEntry{ID: ev.EventId, Tenant: ev.TenantId, Kind: KindVisitCancelled, At: at(ev.CancelledAt), VisitID: ev.VisitId}
	case *eventsv1.ComplaintEscalated:
		sev, _ := enum.Parse[typesv1.Severity](ev.Severity)
		e = store.LedgerEntry{ID: ev.EventId, Tenant: ev.TenantId, Kind: KindComplaintEscalated, At: at(ev.EscalatedAt), CustomerID: ev.CustomerId,
			ComplaintID: ev.ComplaintId, VisitID: ev.VisitId, ServiceID: ev.ServiceId, AgentID: ev.OwnerAgentId, Severity: enum.Name(sev), Attempt: ev.Level}
		links = []link{{store.LinkComplaint, ev.ComplaintId, ev.CustomerId}, {store.LinkVisit, ev.VisitId, ev.CustomerId}}
	case *eventsv1.ComplaintAcknowledged:
		e = store.LedgerEntry{ID: ev.EventId, Tenant: ev.TenantId, Kind: KindComplaintAcknowledged, At: at(ev.At), ComplaintID: ev.ComplaintId, AgentID: ev.By}
	case *eventsv1.ComplaintResolved:
		e = store.LedgerEntry{ID: ev.EventId, Tenant: ev.TenantId, Kind: KindComplaintResolved, At: at(ev.ResolvedAt), CustomerID: ev.CustomerId,
			ComplaintID: ev.ComplaintId, VisitID: ev.VisitId, ServiceID: ev.ServiceId, AgentID: ev.By, Severity: enum.Name(ev.Severity)}
		links = []link{{store.LinkComplaint, ev.ComplaintId, ev.CustomerId}, {store.LinkVisit, ev.VisitId, ev.CustomerId}}
	case *eventsv1.ComplaintReopened:
		e = store.LedgerEntry{ID: ev.EventId, Tenant: ev.TenantId, Kind: KindComplaintReopened, At: at(ev.At), ComplaintID: ev.ComplaintId, Attempt: ev.Level}
	case *eventsv1.ComplaintClosed:
		e = store.LedgerEntry{ID: ev.EventId, Tenant: ev.TenantId, Kind: KindComplaintClosed, At: at(ev.At), ComplaintID: ev.ComplaintId,
			Status: ev.Outcome, AgentID: ev.By}
	case *eventsv1.ContactOptedOut:
		e = store.LedgerEntry{ID: ev.EventId, Tenant: ev.TenantId, Kind: KindOptedOut, At: at(ev.At), CustomerID: ev.CustomerId, Channel: ch(ev.Channel)}
	case *eventsv1.FollowUpRequested:
		e = store.LedgerEntry{ID: ev.EventId, Tenant: ev.TenantId, Kind: KindFollowUpRequested, At: at(ev.DueAt), CustomerID: ev.CustomerId,
			ServiceID: ev.ServiceId, ComplaintID: ev.ComplaintId, VisitID: ev.PreviousVisitId, Channel: ch(ev.Channel), DueAt: opt(ev.DueAt)}
		links = []link{{store.LinkComplaint, ev.ComplaintId, ev.CustomerId}}
	case *eventsv1.CustomerUpdated:
		if !ev.Erased {
			return e, nil, false
		}
		e = store.LedgerEntry{ID: ev.EventId, Tenant: ev.TenantId, Kind: KindErased, At: at(ev.UpdatedAt), CustomerID: ev.GetCustomer().GetId()}
	default:
		return e, nil, false
	}
	return e, links, true
}

// ApplyLedgerTx adds the ledger entry of one event of the bus (consumer
// intake-ledger) within the inbox's transaction, once per event id, and
// learns whose the visit or complaint it names is, attaching the entries
// that arrived before (events of several services come in any order). An
// event the ledger does not keep changes nothing; one without an id or a
// time is refused (dead-lettered).
func (a *App) ApplyLedgerTx(ctx context.Context, tx pgx.Tx, ev proto.Message) error {
	e, links, ok := ledgerEntry(ev)
	if !ok {
		return nil
	}
	if e.ID == "" {
		e.ID = inbox.EventIDFrom(ctx)
	}
	e.Tenant = tenant.Or(e.Tenant)
	if e.ID == "" {
		return invalid.New("event_id", "is required")
	}
	if e.At.IsZero() || e.At.Unix() == 0 {
		return invalid.New("at", fmt.Sprintf("a %s must say when it happened", ev.ProtoReflect().Descriptor().Name()))
	}
	// Neither the entry nor its links are written here: in a batch they
	// are written with the batch's others before the commit, links first,
	// in two statements (store.AddLedger), which comes to what writing
	// them message by message comes to, in any order.
	add := ledgerAdd{entry: e}
	for _, l := range links {
		add.links = append(add.links, store.LedgerLink{Tenant: e.Tenant, Kind: l.kind, Ref: l.ref, CustomerID: l.customer})
	}
	return inbox.Gather(ctx, tx, "intake.ledger", add, a.addLedger)
}

// ledgerAdd is what one event adds to the contact ledger.
type ledgerAdd struct {
	entry store.LedgerEntry
	links []store.LedgerLink
}

// addLedger writes the ledger entries and links of a batch's events.
func (a *App) addLedger(ctx context.Context, tx pgx.Tx, adds []ledgerAdd) error {
	es := make([]store.LedgerEntry, len(adds))
	var links []store.LedgerLink
	for i, add := range adds {
		es[i] = add.entry
		links = append(links, add.links...)
	}
	return a.Store.AddLedger(ctx, tx, es, links)
}

// TimelineQuery asks for a page of a customer's contact ledger.
type TimelineQuery struct {
	Tenant, CustomerID string
	// Kinds, when not empty, are the only kinds read (Kind* names).
	Kinds       []string
	From, To    *time.Time
	NewestFirst bool
	// AfterAt and AfterID: the cursor (the last entry of the page before).
	AfterAt time.Time
	AfterID string
}

// CustomerTimeline reads up to size entries of a customer's contact ledger
// in time order (at, then id), and whether more follow. The customer must
// be in the archive (NotFound) and, for an agent or a leader, of one of
// its org units, as GetCustomer checks.
func (a *App) CustomerTimeline(ctx context.Context, q TimelineQuery, size int) (list []store.LedgerEntry, more bool, err error) {
	// customer_id is required: intake.proto's rule.
	if q.From != nil && q.To != nil && !q.To.After(*q.From) {
		return nil, false, invalid.New("to", "must be after from")
	}
	c, err := a.Store.Customer(ctx, a.DB, store.CustomerKey{Tenant: q.Tenant, ID: q.CustomerID})
	if err != nil {
		return nil, false, notFound("customer", err)
	}
	if p, ok := auth.Restricted(ctx, auth.Director, auth.DepartmentOwner); ok && !p.InUnits(c.OrgUnit) {
		return nil, false, auth.Deny("customer_id", "the customer belongs to an org unit the caller does not lead or belong to")
	}
	list, err = a.Store.Ledger(ctx, a.DB, store.LedgerQuery{Tenant: q.Tenant, CustomerID: q.CustomerID, Kinds: q.Kinds, From: q.From, To: q.To,
		NewestFirst: q.NewestFirst, AfterAt: q.AfterAt, AfterID: q.AfterID}, size+1)
	if err != nil {
		return nil, false, err
	}
	if more = len(list) > size; more {
		list = list[:size]
	}
	return list, more, nil
}
