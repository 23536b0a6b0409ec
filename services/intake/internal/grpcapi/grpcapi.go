// Package grpcapi serves huifang.intake.v1.IntakeService.
package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/page"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/intake/internal/ingest"
	"github.com/huifang/huifang/services/intake/internal/pipeline"
	"github.com/huifang/huifang/services/intake/internal/privacy"
	"github.com/huifang/huifang/services/intake/internal/store"
)

// Batch limits.
const (
	MaxIngestBatch = 500
	MaxImportBatch = 1000
)

// Server implements IntakeService.
type Server struct {
	intakev1.UnimplementedIntakeServiceServer
	Store    *store.Store
	Pipeline *pipeline.Pipeline
	Now      func() time.Time
	// RevealContacts is the one switch that shows phones and emails unmasked
	// in responses. Until the permission model arrives (security issue) it is
	// configuration; then it becomes the caller's reveal permission, here.
	RevealContacts func(ctx context.Context) bool
}

func (s *Server) reveal(ctx context.Context) bool {
	return s.RevealContacts != nil && s.RevealContacts(ctx)
}

// IngestService validates and stores one event, as the NATS ingress does.
// A refused event is recorded with the rejected ones and answered with
// InvalidArgument naming the fields.
func (s *Server) IngestService(ctx context.Context, req *intakev1.IngestServiceRequest) (*intakev1.IngestServiceResponse, error) {
	ev := req.GetEvent()
	if ev == nil {
		return nil, invalid.New("event", "is required")
	}
	out, err := s.Pipeline.Ingest(ctx, ev, "grpc")
	if err != nil {
		return nil, apiError(err)
	}
	if out.Invalid != nil {
		return nil, out.Invalid
	}
	return &intakev1.IngestServiceResponse{ServiceId: out.ServiceID, CustomerId: out.CustomerID, Duplicate: out.Duplicate}, nil
}

// IngestServices takes a batch; every event is validated and stored on its own.
func (s *Server) IngestServices(ctx context.Context, req *intakev1.IngestServicesRequest) (*intakev1.IngestServicesResponse, error) {
	return IngestBatch(ctx, s.Pipeline, req.GetEvents(), "grpc")
}

// IngestBatch ingests events one by one through p and reports each; the HTTP
// webhook shares it.
func IngestBatch(ctx context.Context, p *pipeline.Pipeline, events []*eventsv1.ServiceCompleted, source string) (*intakev1.IngestServicesResponse, error) {
	switch {
	case len(events) == 0:
		return nil, invalid.New("events", "at least one event is required")
	case len(events) > MaxIngestBatch:
		return nil, invalid.New("events", fmt.Sprintf("at most %d events per batch", MaxIngestBatch))
	}
	resp := &intakev1.IngestServicesResponse{}
	for i, ev := range events {
		r := &intakev1.IngestResult{Index: int32(i)}
		if ev == nil {
			ev = &eventsv1.ServiceCompleted{}
		}
		out, err := p.Ingest(ctx, ev, source)
		if errors.Is(err, pipeline.ErrConflict) {
			out, err = p.Ingest(ctx, ev, source) // the other writer has committed by now
		}
		if err != nil {
			return nil, apiError(fmt.Errorf("event %d: %w", i, err))
		}
		switch {
		case out.Invalid != nil:
			r.Violations = violations(out.Invalid)
			r.RejectedEventId = out.RejectedID
			resp.Rejected++
		case out.Duplicate:
			r.ServiceId, r.CustomerId, r.Duplicate = out.ServiceID, out.CustomerID, true
			resp.Duplicates++
		default:
			r.ServiceId, r.CustomerId = out.ServiceID, out.CustomerID
			resp.Accepted++
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}

func violations(e *invalid.Error) []*intakev1.FieldViolation {
	out := make([]*intakev1.FieldViolation, len(e.Violations))
	for i, v := range e.Violations {
		out[i] = &intakev1.FieldViolation{Field: v.Field, Rule: v.Rule}
	}
	return out
}

// apiError turns the pipeline's and the store's errors into gRPC statuses;
// *invalid.Error passes through (the server's interceptor maps it).
func apiError(err error) error {
	switch {
	case errors.Is(err, pipeline.ErrConflict), postgres.IsUniqueViolation(err):
		return status.Error(codes.Aborted, pipeline.ErrConflict.Error())
	case retryable(err):
		return status.Error(codes.Aborted, "a concurrent change got in the way; retry: "+err.Error())
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, "not found")
	}
	return err
}

// retryable tells a deadlock or a serialization failure: the same call succeeds when retried.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

func tenantOrDefault(t string) string {
	if t == "" {
		return ingest.DefaultTenant
	}
	return t
}

// View is how the API shows a customer: contacts masked unless revealed.
func View(c *store.Customer, reveal bool) *intakev1.CustomerView {
	pc := c.Proto()
	if !reveal {
		pc.Phone = privacy.MaskPhone(pc.Phone)
		pc.Email = privacy.MaskEmail(pc.Email)
	}
	return &intakev1.CustomerView{
		Customer: pc, Version: c.Version, Revealed: reveal,
		ServiceSpendYearMinor: c.Metrics.SpendYearMinor, CarsYear: int32(c.Metrics.CarsYear), Referrals: int32(c.Metrics.Referrals),
		AccidentClaimsYearMinor: c.Metrics.ClaimsYearMinor,
		SourceUpdatedAt:         store.Timestamp(c.SourceUpdatedAt), UpdatedAt: store.Timestamp(c.UpdatedAt),
	}
}

// GetCustomer returns one customer, by id, external id or phone.
func (s *Server) GetCustomer(ctx context.Context, req *intakev1.GetCustomerRequest) (*intakev1.GetCustomerResponse, error) {
	if req.GetId() == "" && req.GetExternalId() == "" && req.GetPhone() == "" {
		return nil, invalid.New("id", "id, external_id or phone is required")
	}
	c, err := s.Store.GetCustomer(ctx, store.CustomerQuery{Tenant: tenantOrDefault(req.GetTenantId()), ID: req.GetId(), ExternalID: req.GetExternalId(), Phone: req.GetPhone()})
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Error(codes.NotFound, "no such customer")
	}
	if err != nil {
		return nil, err
	}
	v := View(c, s.reveal(ctx))
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
	list, err := s.Store.ListCustomers(ctx, store.CustomerFilter{
		Tenant: tenantOrDefault(req.GetTenantId()), Tier: req.GetTier(), FewerThanTwoOwners: req.GetFewerThanTwoOwners(),
	}, size+1, cur.ID)
	if err != nil {
		return nil, err
	}
	resp := &intakev1.ListCustomersResponse{}
	list, resp.NextPageToken = page.Trim(list, size, func(last *store.Customer) any { return idCursor{ID: last.ID} })
	reveal := s.reveal(ctx)
	for _, c := range list {
		resp.Customers = append(resp.Customers, View(c, reveal))
	}
	return resp, nil
}

// UpdateContactPreferences replaces a customer's contact preferences.
func (s *Server) UpdateContactPreferences(ctx context.Context, req *intakev1.UpdateContactPreferencesRequest) (*intakev1.UpdateContactPreferencesResponse, error) {
	var l invalid.List
	if req.GetCustomerId() == "" {
		l.Add("customer_id", "is required")
	}
	if req.GetPreferences() == nil {
		l.Add("preferences", "is required")
	} else {
		ingest.ValidatePreferences(&l, "preferences", req.GetPreferences())
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	c, err := s.Store.UpdateCustomer(ctx, tenantOrDefault(req.GetTenantId()), req.GetCustomerId(), func(c *store.Customer) ([]string, error) {
		if proto.Equal(c.Preferences, req.GetPreferences()) {
			return nil, nil
		}
		c.Preferences = req.GetPreferences()
		return []string{"preferences"}, nil
	})
	if err != nil {
		return nil, apiError(err)
	}
	s.Pipeline.Notify()
	return &intakev1.UpdateContactPreferencesResponse{Customer: View(c, s.reveal(ctx))}, nil
}

// SetCustomerOwners replaces the staff who know a customer (seed 002: at least two).
func (s *Server) SetCustomerOwners(ctx context.Context, req *intakev1.SetCustomerOwnersRequest) (*intakev1.SetCustomerOwnersResponse, error) {
	var l invalid.List
	if req.GetCustomerId() == "" {
		l.Add("customer_id", "is required")
	}
	ingest.ValidateOwners(&l, "owner_ids", req.GetOwnerIds())
	if err := l.Err(); err != nil {
		return nil, err
	}
	owners := dedupe(req.GetOwnerIds())
	c, err := s.Store.UpdateCustomer(ctx, tenantOrDefault(req.GetTenantId()), req.GetCustomerId(), func(c *store.Customer) ([]string, error) {
		if slices.Equal(c.Owners, owners) {
			return nil, nil
		}
		c.Owners = owners
		return []string{"owner_ids"}, nil
	})
	if err != nil {
		return nil, apiError(err)
	}
	s.Pipeline.Notify()
	return &intakev1.SetCustomerOwnersResponse{Customer: View(c, s.reveal(ctx))}, nil
}

func dedupe(in []string) []string {
	var out []string
	for _, v := range in {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// ImportCustomers upserts archive records one by one; a bad record refuses
// only itself. Importing the same records again changes nothing, so an
// interrupted import can simply be run again.
func (s *Server) ImportCustomers(ctx context.Context, req *intakev1.ImportCustomersRequest) (*intakev1.ImportCustomersResponse, error) {
	tenant := tenantOrDefault(req.GetTenantId())
	switch {
	case !ingest.ValidTenant(tenant):
		return nil, invalid.New("tenant_id", "must be 1–63 lowercase letters, digits, '-' or '_'")
	case len(req.GetRecords()) == 0:
		return nil, invalid.New("records", "at least one record is required")
	case len(req.GetRecords()) > MaxImportBatch:
		return nil, invalid.New("records", fmt.Sprintf("at most %d records per call", MaxImportBatch))
	}
	resp := &intakev1.ImportCustomersResponse{}
	type valid struct {
		r  *intakev1.ImportRecordResult
		c  *typesv1.Customer
		at time.Time
	}
	var good []valid
	for i, rec := range req.GetRecords() {
		r := &intakev1.ImportRecordResult{Line: rec.GetLine()}
		resp.Results = append(resp.Results, r)
		var l invalid.List
		c := rec.GetCustomer()
		prefix := fmt.Sprintf("records[%d].customer", i)
		if c == nil {
			l.Add(prefix, "is required")
		} else {
			ingest.NormalizeCustomer(c)
			ingest.ValidateCustomer(&l, prefix, c)
		}
		at := s.Now()
		if ts := rec.GetSourceUpdatedAt(); ts != nil {
			if ts.CheckValid() != nil || ts.AsTime().After(s.Now().Add(ingest.MaxFutureSkew)) {
				l.Add(fmt.Sprintf("records[%d].source_updated_at", i), "must be a valid time, not in the future")
			} else {
				at = ts.AsTime()
			}
		}
		if err := l.Err(); err != nil {
			bad, _ := invalid.As(err)
			r.Outcome, r.Violations = intakev1.ImportOutcome_IMPORT_OUTCOME_REJECTED, violations(bad)
			resp.Rejected++
			continue
		}
		good = append(good, valid{r: r, c: c, at: at})
	}
	// The valid records of a call are stored in one transaction: all or none,
	// so a caller that retries a failed call never half-imports it.
	outcomes := make([]store.Outcome, len(good))
	err := pgx.BeginFunc(ctx, s.Store.Pool, func(tx pgx.Tx) error {
		for i, g := range good {
			var err error
			outcomes[i], g.r.CustomerId, err = s.Store.UpsertCustomer(ctx, tx, tenant, g.c, g.at)
			if err != nil {
				return fmt.Errorf("record on line %d: %w", g.r.Line, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, apiError(err)
	}
	for i, g := range good {
		switch outcomes[i] {
		case store.Created:
			g.r.Outcome = intakev1.ImportOutcome_IMPORT_OUTCOME_IMPORTED
			resp.Imported++
		case store.Updated:
			g.r.Outcome = intakev1.ImportOutcome_IMPORT_OUTCOME_UPDATED
			resp.Updated++
		default:
			g.r.Outcome = intakev1.ImportOutcome_IMPORT_OUTCOME_UNCHANGED
			resp.Unchanged++
		}
	}
	s.Pipeline.Notify()
	return resp, nil
}

// RegisterServiceType adds a tenant-defined service type.
func (s *Server) RegisterServiceType(ctx context.Context, req *intakev1.RegisterServiceTypeRequest) (*intakev1.RegisterServiceTypeResponse, error) {
	tenant := tenantOrDefault(req.GetTenantId())
	if !ingest.ValidTenant(tenant) {
		return nil, invalid.New("tenant_id", "must be 1–63 lowercase letters, digits, '-' or '_'")
	}
	if err := ingest.ValidateTypeName(req.GetName()); err != nil {
		return nil, err
	}
	if err := s.Store.RegisterType(ctx, tenant, req.GetName(), req.GetDescription()); err != nil {
		return nil, err
	}
	return &intakev1.RegisterServiceTypeResponse{ServiceType: &intakev1.ServiceType{Name: req.GetName(), Description: req.GetDescription()}}, nil
}

// ListServiceTypes lists the built-in types and the tenant's own.
func (s *Server) ListServiceTypes(ctx context.Context, req *intakev1.ListServiceTypesRequest) (*intakev1.ListServiceTypesResponse, error) {
	resp := &intakev1.ListServiceTypesResponse{}
	for _, t := range ingest.ServiceTypes() {
		resp.ServiceTypes = append(resp.ServiceTypes, &intakev1.ServiceType{Name: t, BuiltIn: true})
	}
	own, err := s.Store.ListTypes(ctx, tenantOrDefault(req.GetTenantId()))
	if err != nil {
		return nil, err
	}
	for _, t := range own {
		resp.ServiceTypes = append(resp.ServiceTypes, &intakev1.ServiceType{Name: t.Name, Description: t.Description})
	}
	return resp, nil
}

// RehashContacts recomputes the search hashes made under another HASH_KEY,
// batch_size customers per transaction; a second call resumes.
func (s *Server) RehashContacts(ctx context.Context, req *intakev1.RehashContactsRequest) (*intakev1.RehashContactsResponse, error) {
	batch := int(req.GetBatchSize())
	switch {
	case batch == 0:
		batch = 500
	case batch < 0 || batch > 5000:
		return nil, invalid.New("batch_size", "must be between 1 and 5000 (0: 500)")
	}
	n, err := s.Store.Rehash(ctx, batch)
	if err != nil {
		return nil, err
	}
	left, err := s.Store.StaleHashes(ctx)
	if err != nil {
		return nil, err
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
	rows, err := s.Store.ListRejected(ctx, tenantOrDefault(req.GetTenantId()), size+1, cur.At, cur.ID)
	if err != nil {
		return nil, err
	}
	resp := &intakev1.ListRejectedEventsResponse{}
	rows, resp.NextPageToken = page.Trim(rows, size, func(last store.Rejected) any {
		return rejectedCursor{At: last.ReceivedAt, ID: last.ID}
	})
	reveal := s.reveal(ctx)
	for _, r := range rows {
		out, _ := rejectedView(r, reveal)
		resp.RejectedEvents = append(resp.RejectedEvents, out)
	}
	return resp, nil
}

// rejectedView is how the API shows a refused input (decrypted by the store)
// and, when it decodes, the event in it. Unless revealed, contacts are
// masked: a payload that decodes is masked field by field and encoded again
// in its content type; one that does not is masked as text (privacy.MaskText).
func rejectedView(r store.Rejected, reveal bool) (*intakev1.RejectedEvent, *eventsv1.ServiceCompleted) {
	out := &intakev1.RejectedEvent{
		Id: r.ID, TenantId: r.Tenant, Source: r.Source, Field: r.Field, Reason: r.Reason,
		ContentType: r.ContentType, Payload: r.Payload, ReceivedAt: store.Timestamp(r.ReceivedAt),
		ReplayedServiceId: r.ReplayedServiceID, Masked: !reveal,
	}
	if r.ReplayedAt != nil {
		out.ReplayedAt = store.Timestamp(*r.ReplayedAt)
	}
	ev, err := ingest.Decode(r.ContentType, r.Payload)
	if err != nil {
		ev = nil
	}
	if reveal {
		return out, ev
	}
	if ev == nil {
		out.Payload = []byte(privacy.MaskText(string(r.Payload)))
		return out, nil
	}
	maskEvent(ev)
	if isProtobuf(r.ContentType, r.Payload) {
		out.Payload, err = proto.Marshal(ev)
	} else {
		out.Payload, err = protojson.MarshalOptions{UseProtoNames: true}.Marshal(ev)
		out.Payload = []byte(privacy.MaskText(string(out.Payload)))
	}
	if err != nil {
		out.Payload = nil
	}
	return out, ev
}

// isProtobuf tells whether a stored payload is protobuf (by its content
// type, or, without one, by not starting with '{'), as ingest.Decode reads it.
func isProtobuf(contentType string, payload []byte) bool {
	ct := strings.TrimSpace(strings.ToLower(strings.SplitN(contentType, ";", 2)[0]))
	if ct == "" {
		return !strings.HasPrefix(strings.TrimSpace(string(payload)), "{")
	}
	return ct == stream.ContentTypeProtobuf
}

// maskEvent masks the contacts in a decoded event: the customer's phone and
// email, and anything that looks like one in the free-form attributes.
func maskEvent(ev *eventsv1.ServiceCompleted) {
	if c := ev.GetCustomer(); c != nil {
		c.Phone = privacy.MaskPhone(c.Phone)
		c.Email = privacy.MaskEmail(c.Email)
	}
	for k, v := range ev.GetAttributes() {
		ev.Attributes[k] = privacy.MaskText(v)
	}
}

// GetRejectedEvent returns one refused input and, when it decodes, the event in it.
func (s *Server) GetRejectedEvent(ctx context.Context, req *intakev1.GetRejectedEventRequest) (*intakev1.GetRejectedEventResponse, error) {
	if req.GetId() == "" {
		return nil, invalid.New("id", "is required")
	}
	r, err := s.Store.GetRejected(ctx, tenantOrDefault(req.GetTenantId()), req.GetId())
	if err != nil {
		return nil, apiError(err)
	}
	out, ev := rejectedView(r, s.reveal(ctx))
	return &intakev1.GetRejectedEventResponse{RejectedEvent: out, Decoded: ev}, nil
}

// ReplayRejectedEvent runs a refused input through ingestion again, as it was
// or fixed. Still-bad input is answered with InvalidArgument and changes nothing.
func (s *Server) ReplayRejectedEvent(ctx context.Context, req *intakev1.ReplayRejectedEventRequest) (*intakev1.ReplayRejectedEventResponse, error) {
	if req.GetId() == "" {
		return nil, invalid.New("id", "is required")
	}
	res, err := s.Pipeline.Replay(ctx, tenantOrDefault(req.GetTenantId()), req.GetId(), req.GetFixed())
	if errors.Is(err, pipeline.ErrAlreadyReplayed) {
		return nil, status.Errorf(codes.FailedPrecondition, "rejected event %s was already replayed as service %s", req.GetId(), res.ServiceID)
	}
	if err != nil {
		return nil, apiError(err)
	}
	return &intakev1.ReplayRejectedEventResponse{ServiceId: res.ServiceID, CustomerId: res.CustomerID, Duplicate: res.Duplicate}, nil
}
