package consumer

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/enum"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/engine"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

// The events as the use cases take them: each checks the fields its use
// case needs and refuses the event (dead-letter) naming the first ones missing.

// at is an event's time; zero when the event has none (the use case takes now).
func at(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// completed reads a ServiceCompleted: what the policies read of the service,
// the customer, and the complaint a closed-complaint service was about.
func completed(ev *eventsv1.ServiceCompleted) (app.Completed, error) {
	var l invalid.List
	if ev.GetServiceId() == "" {
		l.Add("service_id", "is required on ServiceCompleted from intake")
	}
	if ev.GetCompletedAt() == nil {
		l.Add("completed_at", "is required")
	}
	if ev.GetTenantId() == "" {
		l.Add("tenant_id", "is required on ServiceCompleted from intake")
	}
	if err := l.Err(); err != nil {
		return app.Completed{}, err
	}
	customer, err := app.CustomerFrom(ev.GetCustomer())
	if err != nil {
		return app.Completed{}, err
	}
	svc := policy.Service{
		Tenant: ev.GetTenantId(), ID: ev.GetServiceId(), Type: ev.GetServiceType(), OrgUnit: ev.GetOrgUnit(),
		CompletedAt: ev.GetCompletedAt().AsTime(), CustomerID: ev.GetCustomer().GetId(), Tier: ev.GetCustomer().GetTier(),
		ProductCategory: ev.GetProduct().GetCategory(), Severity: enum.Name(ev.GetComplaint().GetSeverity()),
		Attributes: ev.GetAttributes(), WarrantyUntil: at(ev.GetProduct().GetWarrantyUntil()),
		Vehicle: ev.GetVehicle().GetVin(), OdometerKm: ev.GetVehicle().GetMileageKm(),
	}
	if svc.Vehicle == "" {
		svc.Vehicle = ev.GetVehicle().GetPlate()
	}
	c := ev.GetComplaint()
	return app.Completed{Service: svc, Customer: customer, ComplaintID: c.GetReference(), Severity: int32(c.GetSeverity()),
		Anonymous: c.GetAnonymous(), WrittenReplyOnly: c.GetWrittenReplyOnly()}, nil
}

// customerUpdated reads a CustomerUpdated.
func customerUpdated(ev *eventsv1.CustomerUpdated) (app.CustomerUpdate, error) {
	var l invalid.List
	if ev.GetTenantId() == "" {
		l.Add("tenant_id", "is required")
	}
	if ev.GetCustomer().GetId() == "" {
		l.Add("customer.id", "is required")
	}
	if ev.GetVersion() < 1 {
		l.Add("version", "must be at least 1")
	}
	if err := l.Err(); err != nil {
		return app.CustomerUpdate{}, err
	}
	customer, err := app.CustomerFrom(ev.GetCustomer())
	if err != nil {
		return app.CustomerUpdate{}, err
	}
	return app.CustomerUpdate{Tenant: ev.GetTenantId(), Customer: customer, Version: ev.GetVersion(), At: at(ev.GetUpdatedAt()),
		Erased: ev.GetErased()}, nil
}

// optedOut reads a ContactOptedOut.
func optedOut(ev *eventsv1.ContactOptedOut) (app.OptOut, error) {
	var l invalid.List
	if ev.GetTenantId() == "" {
		l.Add("tenant_id", "is required")
	}
	if ev.GetCustomerId() == "" {
		l.Add("customer_id", "is required")
	}
	if ev.GetChannel() == 0 {
		l.Add("channel", "is required")
	}
	if err := l.Err(); err != nil {
		return app.OptOut{}, err
	}
	return app.OptOut{Tenant: ev.GetTenantId(), CustomerID: ev.GetCustomerId(), Channel: int32(ev.GetChannel()), At: at(ev.GetAt()),
		Source: ev.GetSource()}, nil
}

// complaintResolved reads a ComplaintResolved.
func complaintResolved(ev *eventsv1.ComplaintResolved) (app.ComplaintResolved, error) {
	var l invalid.List
	if ev.GetTenantId() == "" {
		l.Add("tenant_id", "is required")
	}
	if ev.GetComplaintId() == "" {
		l.Add("complaint_id", "is required")
	}
	if ev.GetResolvedAt() == nil {
		l.Add("resolved_at", "is required")
	}
	if ev.GetCustomerId() == "" && ev.GetCustomer().GetId() == "" {
		l.Add("customer_id", "is required")
	}
	if err := l.Err(); err != nil {
		return app.ComplaintResolved{}, err
	}
	customer, err := app.CustomerFrom(ev.GetCustomer())
	if err != nil {
		return app.ComplaintResolved{}, err
	}
	return app.ComplaintResolved{Tenant: ev.GetTenantId(), ComplaintID: ev.GetComplaintId(), OrgUnit: ev.GetOrgUnit(),
		ProductCategory: ev.GetCategory(), CustomerID: ev.GetCustomerId(), Customer: customer, ResolvedAt: ev.GetResolvedAt().AsTime(),
		Severity: int32(ev.GetSeverity()), NoFollowUp: ev.GetNoFollowUp()}, nil
}

// followUpRequested reads a FollowUpRequested.
func followUpRequested(ev *eventsv1.FollowUpRequested) (app.FollowUp, error) {
	var l invalid.List
	if ev.GetTenantId() == "" {
		l.Add("tenant_id", "is required")
	}
	if ev.GetCustomerId() == "" && ev.GetCustomer().GetId() == "" {
		l.Add("customer_id", "is required")
	}
	if ev.GetServiceId() == "" && ev.GetComplaintId() == "" {
		l.Add("service_id", "is required when complaint_id is empty")
	}
	if ev.GetDueAt() != nil && ev.GetDeadline() != nil && ev.GetDeadline().AsTime().Before(ev.GetDueAt().AsTime()) {
		l.Add("deadline", "must not be before due_at")
	}
	if err := l.Err(); err != nil {
		return app.FollowUp{}, err
	}
	customer, err := app.CustomerFrom(ev.GetCustomer())
	if err != nil {
		return app.FollowUp{}, err
	}
	return app.FollowUp{Tenant: ev.GetTenantId(), ServiceID: ev.GetServiceId(), ComplaintID: ev.GetComplaintId(), OrgUnit: ev.GetOrgUnit(),
		CustomerID: ev.GetCustomerId(), Customer: customer,
		Request: engine.Request{Due: at(ev.GetDueAt()), Deadline: at(ev.GetDeadline()), Channel: int32(ev.GetChannel()),
			Group: ev.GetGroup(), Reason: ev.GetReason(), PreviousVisit: ev.GetPreviousVisitId()}}, nil
}
