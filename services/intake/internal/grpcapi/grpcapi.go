// Package grpcapi serves huifang.intake.v1.IntakeService: each call decodes
// and checks the request's shape, calls one command or query of the app and
// encodes the answer (contacts masked; RevealContact reveals); statusOf turns the
// app's errors into gRPC statuses.
package grpcapi

import (
	"context"
	"time"

	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	"google.golang.org/protobuf/proto"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/customerdata"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/page"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/intake/internal/app"
	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/ingest"
)

// Server implements IntakeService.
type Server struct {
	intakev1.UnimplementedIntakeServiceServer
	App *app.App
}

// IngestService validates and stores one event, as the NATS ingress does.
// A refused event is recorded with the rejected ones and answered with
// InvalidArgument naming the fields.
func (s *Server) IngestService(ctx context.Context, req *intakev1.IngestServiceRequest) (*intakev1.IngestServiceResponse, error) {
	out, err := s.App.IngestService(ctx, app.IngestService{Event: req.GetEvent(), Source: "grpc"})
	if err != nil {
		return nil, statusOf(err)
	}
	if out.Invalid != nil {
		return nil, out.Invalid
	}
	return IngestServiceResponse(out), nil
}

// IngestServices takes a batch; every event is validated and stored on its own.
func (s *Server) IngestServices(ctx context.Context, req *intakev1.IngestServicesRequest) (*intakev1.IngestServicesResponse, error) {
	b, err := s.App.IngestBatch(ctx, app.IngestBatch{Events: req.GetEvents(), Source: "grpc"})
	if err != nil {
		return nil, statusOf(err)
	}
	return IngestServicesResponse(b), nil
}

// GetCustomer returns one customer, by id, external id or phone.
func (s *Server) GetCustomer(ctx context.Context, req *intakev1.GetCustomerRequest) (*intakev1.GetCustomerResponse, error) {
	if req.GetId() == "" && req.GetExternalId() == "" && req.GetPhone() == "" {
		return nil, invalid.New("id", "id, external_id or phone is required")
	}
	c, err := s.App.GetCustomer(ctx, app.CustomerQuery{Tenant: tenant.Or(req.GetTenantId()), ID: req.GetId(), ExternalID: req.GetExternalId(),
		Phone: req.GetPhone(), Purpose: req.GetPurpose()})
	if err != nil {
		return nil, statusOf(err)
	}
	v := View(c)
	return &intakev1.GetCustomerResponse{Customer: v.Customer, View: v}, nil
}

type idCursor struct {
	ID string `json:"i"`
}

// ListCustomers lists the archive by id, optionally one tier or only the
// customers known to fewer than two staff.
func (s *Server) ListCustomers(ctx context.Context, req *intakev1.ListCustomersRequest) (*intakev1.ListCustomersResponse, error) {
	size, err := page.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var cur idCursor
	if err := page.Cursor(req.GetPageToken(), &cur); err != nil {
		return nil, err
	}
	list, more, err := s.App.ListCustomers(ctx, app.CustomerFilter{
		Tenant: tenant.Or(req.GetTenantId()), Tier: req.GetTier(), FewerThanTwoOwners: req.GetFewerThanTwoOwners(),
	}, size, cur.ID)
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &intakev1.ListCustomersResponse{}
	if more {
		resp.NextPageToken = page.Token(idCursor{ID: list[len(list)-1].ID})
	}
	for _, c := range list {
		resp.Customers = append(resp.Customers, View(c))
	}
	return resp, nil
}

// UpdateContactPreferences replaces a customer's contact preferences.
func (s *Server) UpdateContactPreferences(ctx context.Context, req *intakev1.UpdateContactPreferencesRequest) (*intakev1.UpdateContactPreferencesResponse, error) {
	c, err := s.App.UpdateContactPreferences(ctx, app.UpdateContactPreferences{
		Tenant: tenant.Or(req.GetTenantId()), CustomerID: req.GetCustomerId(), Preferences: archive.PreferencesFromProto(req.GetPreferences()),
	})
	if err != nil {
		return nil, statusOf(err)
	}
	return &intakev1.UpdateContactPreferencesResponse{Customer: View(c)}, nil
}

// SetCustomerOwners replaces the staff who know a customer (seed 002: at least two).
func (s *Server) SetCustomerOwners(ctx context.Context, req *intakev1.SetCustomerOwnersRequest) (*intakev1.SetCustomerOwnersResponse, error) {
	c, err := s.App.SetCustomerOwners(ctx, app.SetCustomerOwners{
		Tenant: tenant.Or(req.GetTenantId()), CustomerID: req.GetCustomerId(), OwnerIDs: req.GetOwnerIds(),
	})
	if err != nil {
		return nil, statusOf(err)
	}
	return &intakev1.SetCustomerOwnersResponse{Customer: View(c)}, nil
}

// ImportCustomers merges archive records; a bad record refuses only itself.
// Importing the same records again changes nothing, so an interrupted
// import can simply be run again.
func (s *Server) ImportCustomers(ctx context.Context, req *intakev1.ImportCustomersRequest) (*intakev1.ImportCustomersResponse, error) {
	in := app.ImportCustomers{Tenant: req.GetTenantId()}
	for _, rec := range req.GetRecords() {
		in.Records = append(in.Records, app.ImportRecord{Line: rec.GetLine(), Customer: rec.GetCustomer(), SourceUpdatedAt: rec.GetSourceUpdatedAt()})
	}
	out, err := s.App.ImportCustomers(ctx, in)
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &intakev1.ImportCustomersResponse{
		Imported: int32(out.Imported), Updated: int32(out.Updated), Unchanged: int32(out.Unchanged), Rejected: int32(out.Rejected),
	}
	for _, r := range out.Results {
		res := &intakev1.ImportRecordResult{Line: r.Line, CustomerId: r.CustomerID}
		switch r.Outcome {
		case app.Imported:
			res.Outcome = intakev1.ImportOutcome_IMPORT_OUTCOME_IMPORTED
		case app.Updated:
			res.Outcome = intakev1.ImportOutcome_IMPORT_OUTCOME_UPDATED
		case app.Unchanged:
			res.Outcome = intakev1.ImportOutcome_IMPORT_OUTCOME_UNCHANGED
		case app.Rejected:
			res.Outcome, res.Violations = intakev1.ImportOutcome_IMPORT_OUTCOME_REJECTED, violations(r.Invalid)
		}
		resp.Results = append(resp.Results, res)
	}
	return resp, nil
}

// RegisterServiceType adds a tenant-defined service type.
func (s *Server) RegisterServiceType(ctx context.Context, req *intakev1.RegisterServiceTypeRequest) (*intakev1.RegisterServiceTypeResponse, error) {
	t := ingest.ServiceType{Name: req.GetName(), Description: req.GetDescription()}
	if err := s.App.RegisterServiceType(ctx, app.RegisterServiceType{Tenant: req.GetTenantId(), Type: t}); err != nil {
		return nil, statusOf(err)
	}
	return &intakev1.RegisterServiceTypeResponse{ServiceType: &intakev1.ServiceType{Name: t.Name, Description: t.Description}}, nil
}

// ListServiceTypes lists the built-in types and the tenant's own.
func (s *Server) ListServiceTypes(ctx context.Context, req *intakev1.ListServiceTypesRequest) (*intakev1.ListServiceTypesResponse, error) {
	types, err := s.App.ListServiceTypes(ctx, tenant.Or(req.GetTenantId()))
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &intakev1.ListServiceTypesResponse{}
	for _, t := range types {
		resp.ServiceTypes = append(resp.ServiceTypes, &intakev1.ServiceType{Name: t.Name, Description: t.Description, BuiltIn: t.BuiltIn})
	}
	return resp, nil
}

// RehashContacts recomputes the search hashes made under another HASH_KEY,
// batch_size customers per transaction; a second call resumes.
func (s *Server) RehashContacts(ctx context.Context, req *intakev1.RehashContactsRequest) (*intakev1.RehashContactsResponse, error) {
	// batch_size is 0 to 5000 (intake.proto's rule); 0 is the default.
	batch := int(req.GetBatchSize())
	if batch == 0 {
		batch = app.DefaultBatch
	}
	n, left, err := s.App.RehashContacts(ctx, batch)
	if err != nil {
		return nil, statusOf(err)
	}
	return &intakev1.RehashContactsResponse{Rehashed: n, Remaining: left}, nil
}

type rejectedCursor struct {
	At time.Time `json:"t"`
	ID string    `json:"i"`
}

// ListRejectedEvents lists refused inputs, newest first.
func (s *Server) ListRejectedEvents(ctx context.Context, req *intakev1.ListRejectedEventsRequest) (*intakev1.ListRejectedEventsResponse, error) {
	size, err := page.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var cur rejectedCursor
	if err := page.Cursor(req.GetPageToken(), &cur); err != nil {
		return nil, err
	}
	rows, more, err := s.App.ListRejected(ctx, app.RejectedList{Tenant: tenant.Or(req.GetTenantId()), Size: size, AfterTime: cur.At, AfterID: cur.ID})
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &intakev1.ListRejectedEventsResponse{}
	if more {
		last := rows[len(rows)-1]
		resp.NextPageToken = page.Token(rejectedCursor{At: last.ReceivedAt, ID: last.ID})
	}
	for _, r := range rows {
		out, _ := rejectedView(r)
		resp.RejectedEvents = append(resp.RejectedEvents, out)
	}
	return resp, nil
}

// GetRejectedEvent returns one refused input and, when it decodes, the event in it.
func (s *Server) GetRejectedEvent(ctx context.Context, req *intakev1.GetRejectedEventRequest) (*intakev1.GetRejectedEventResponse, error) {
	r, err := s.App.GetRejected(ctx, tenant.Or(req.GetTenantId()), req.GetId())
	if err != nil {
		return nil, statusOf(err)
	}
	out, ev := rejectedView(r)
	return &intakev1.GetRejectedEventResponse{RejectedEvent: out, Decoded: ev}, nil
}

// ReplayRejectedEvent runs a refused input through ingestion again, as it was
// or fixed. Still-bad input is answered with InvalidArgument and changes
// nothing; a second replay of a stored one is FailedPrecondition.
func (s *Server) ReplayRejectedEvent(ctx context.Context, req *intakev1.ReplayRejectedEventRequest) (*intakev1.ReplayRejectedEventResponse, error) {
	res, err := s.App.ReplayRejected(ctx, app.ReplayRejected{Tenant: tenant.Or(req.GetTenantId()), ID: req.GetId(), Fixed: req.GetFixed()})
	if err != nil {
		return nil, statusOf(err)
	}
	return &intakev1.ReplayRejectedEventResponse{ServiceId: res.ServiceID, CustomerId: res.CustomerID, Duplicate: res.Duplicate}, nil
}

// RevealContact returns a customer's clear contacts for a stated purpose,
// audited (app.RevealContact).
func (s *Server) RevealContact(ctx context.Context, req *intakev1.RevealContactRequest) (*intakev1.RevealContactResponse, error) {
	fields := make([]string, 0, len(req.GetFields()))
	for _, f := range req.GetFields() {
		switch f {
		case intakev1.ContactField_CONTACT_FIELD_NAME:
			fields = append(fields, app.FieldName)
		case intakev1.ContactField_CONTACT_FIELD_PHONE:
			fields = append(fields, app.FieldPhone)
		case intakev1.ContactField_CONTACT_FIELD_EMAIL:
			fields = append(fields, app.FieldEmail)
		default:
			return nil, invalid.New("fields", "must be CONTACT_FIELD_NAME, CONTACT_FIELD_PHONE or CONTACT_FIELD_EMAIL")
		}
	}
	r, err := s.App.RevealContact(ctx, app.RevealContact{Tenant: req.GetTenantId(), CustomerID: req.GetCustomerId(), Fields: fields,
		Purpose: req.GetPurpose(), OnBehalfOf: req.GetOnBehalfOf()})
	if err != nil {
		return nil, statusOf(err)
	}
	return &intakev1.RevealContactResponse{CustomerId: r.CustomerID, Name: r.Name, Phone: r.Phone, Email: r.Email}, nil
}

// RefusedCall writes a refused RevealContact to the audit log (the guard's
// auth.RefusalFunc): a reveal refused for lack of permission leaves its
// trace as a reveal does.
func (s *Server) RefusedCall(ctx context.Context, p auth.Principal, method string, req proto.Message, reason error) error {
	r, ok := req.(*intakev1.RevealContactRequest)
	if method != intakev1.IntakeService_RevealContact_FullMethodName || !ok {
		return nil
	}
	return s.App.RefusedReveal(ctx, p, r.GetTenantId(), r.GetCustomerId(), reason.Error())
}

// EraseCustomer erases a customer's personal data (app.EraseCustomer).
func (s *Server) EraseCustomer(ctx context.Context, req *intakev1.EraseCustomerRequest) (*intakev1.EraseCustomerResponse, error) {
	c, now, err := s.App.EraseCustomer(ctx, app.EraseCustomer{Tenant: tenant.Or(req.GetTenantId()), CustomerID: req.GetCustomerId(), Reason: req.GetReason()})
	if err != nil {
		return nil, statusOf(err)
	}
	return &intakev1.EraseCustomerResponse{Customer: View(c), ErasedNow: now}, nil
}

// ExportCustomerData returns everything Huifang holds about a customer as
// one document (app.ExportCustomerData).
func (s *Server) ExportCustomerData(ctx context.Context, req *intakev1.ExportCustomerDataRequest) (*intakev1.ExportCustomerDataResponse, error) {
	doc, err := s.App.ExportCustomerData(ctx, app.ExportCustomerData{Tenant: tenant.Or(req.GetTenantId()), CustomerID: req.GetCustomerId(), Reason: req.GetReason()})
	if err != nil {
		return nil, statusOf(err)
	}
	st, err := customerdata.Struct(doc)
	if err != nil {
		return nil, err
	}
	return &intakev1.ExportCustomerDataResponse{Document: st}, nil
}
