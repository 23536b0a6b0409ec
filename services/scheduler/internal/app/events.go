package app

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	calendar "github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

// The events the scheduler publishes, written to the outbox in the
// transaction of the change they announce.

// addPlanned announces a planned (or rescheduled) visit: VisitPlanned.
func addPlanned(ctx context.Context, tx pgx.Tx, v visit.Visit) error {
	err := emit(ctx, tx, outbox.Message{Subject: stream.SubjectVisitPlanned, Payload: &eventsv1.VisitPlanned{
		TenantId: v.Tenant, VisitId: v.ID, ServiceId: v.ServiceID, PolicyId: v.PolicyID, PolicyVersion: int32(v.PolicyVersion),
		Step: int32(v.Step), Channel: typesv1.Channel(v.Channel), DueAt: timestamppb.New(v.DueAt), Deadline: timestamppb.New(v.Deadline),
		OrgUnit: v.OrgUnit, ServiceType: v.ServiceType, CustomerId: v.CustomerID,
	}})
	return err
}

// addCancelled announces a visit that will not be made: VisitCancelled.
func addCancelled(ctx context.Context, tx pgx.Tx, v visit.Visit, at time.Time) error {
	err := emit(ctx, tx, outbox.Message{Subject: stream.SubjectVisitCancelled, Payload: &eventsv1.VisitCancelled{
		TenantId: v.Tenant, VisitId: v.ID, Reason: v.Reason, CancelledAt: timestamppb.New(at),
	}})
	return err
}

// addDue announces a visit that fell due: VisitDue, with the customer
// snapshot and the tenant's contact calendar from the visit's due day on,
// by which dispatch places retries and call-backs.
func addDue(ctx context.Context, tx pgx.Tx, v visit.Visit, r contact.Rules) error {
	customer := &typesv1.Customer{}
	if len(v.Customer) > 0 {
		if err := protojson.Unmarshal(v.Customer, customer); err != nil {
			return fmt.Errorf("the customer snapshot of visit %s cannot be decoded as a huifang.types.v1.Customer: %s", v.ID, withheld(err))
		}
	}
	due := &eventsv1.VisitDue{
		EventId: outbox.NewEventID(), TenantId: v.Tenant, VisitId: v.ID, ServiceId: v.ServiceID, PolicyId: v.PolicyID,
		PolicyVersion: int32(v.PolicyVersion), Channel: typesv1.Channel(v.Channel), DueAt: timestamppb.New(v.DueAt),
		Deadline: timestamppb.New(v.Deadline), Customer: customer, OrgUnit: v.OrgUnit, ServiceType: v.ServiceType, Group: v.Group,
		ServiceCompletedAt: timestamppb.New(v.ServiceCompletedAt), ComplaintId: v.ComplaintID, Severity: typesv1.Severity(v.Severity),
		ProductCategory: v.ProductCategory, Late: v.Late(),
	}
	if cal, ok := r.CalendarFrom(v.DueAt); ok {
		due.ContactCalendar = calendarProto(cal)
	}
	err := emit(ctx, tx, outbox.Message{ID: due.EventId, Subject: stream.SubjectVisitDue, Payload: due})
	return err
}

func calendarProto(c calendar.Calendar) *typesv1.ContactCalendar {
	out := &typesv1.ContactCalendar{TimeZone: c.TimeZone, Holidays: c.Holidays, AvoidHolidays: c.AvoidHolidays}
	for _, w := range c.Windows {
		out.Windows = append(out.Windows, windowProto(w))
	}
	if c.Quiet != nil {
		out.QuietHours = windowProto(*c.Quiet)
	}
	return out
}

func windowProto(w calendar.Window) *typesv1.ContactWindow {
	return &typesv1.ContactWindow{StartMinute: int32(w.Start), EndMinute: int32(w.End)}
}

func windowFrom(w *typesv1.ContactWindow) calendar.Window {
	return calendar.Window{Start: int(w.GetStartMinute()), End: int(w.GetEndMinute())}
}

var (
	jsonPosition = regexp.MustCompile(`\(line \d+:\d+\)`)
	// What protojson says of a value without quoting it: the kind and the
	// field (the schema's names), or a field name the snapshot has.
	jsonWhat = regexp.MustCompile(`invalid value for \w+ (field \w+|key)|(unknown|duplicate) field "?[\w.]*"?`)
)

// withheld is what protojson says of a snapshot it cannot decode, without
// the values it quotes (a customer's name or phone number): where, and what
// went wrong when that can be said without them.
func withheld(err error) string {
	msg := err.Error()
	out := "protojson"
	if pos := jsonPosition.FindString(msg); pos != "" {
		out += " " + pos
	}
	if what := jsonWhat.FindString(msg); what != "" {
		return out + ": " + what
	}
	return out + ": malformed (the decoder's words are withheld: they may quote the customer's data)"
}
