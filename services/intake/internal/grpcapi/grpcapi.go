// Package grpcapi serves huifang.intake.v1.IntakeService.
package grpcapi

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/page"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/intake/internal/ingest"
	"github.com/huifang/huifang/services/intake/internal/store"
)

// Server implements IntakeService.
type Server struct {
	intakev1.UnimplementedIntakeServiceServer
	Store *store.Store
	Relay *outbox.Relay
	Now   func() time.Time
}

// IngestService validates and stores one event, as the NATS ingress does.
// A refused event is recorded with the rejected ones and answered with
// InvalidArgument naming the fields.
func (s *Server) IngestService(ctx context.Context, req *intakev1.IngestServiceRequest) (*intakev1.IngestServiceResponse, error) {
	ev := req.GetEvent()
	if ev == nil {
		return nil, invalid.New("event", "is required")
	}
	ingest.Normalize(ev)
	if verr := ingest.Validate(ev, s.Now()); verr != nil {
		bad, _ := invalid.As(verr)
		raw, _ := proto.Marshal(ev)
		err := pgx.BeginFunc(ctx, s.Store.Pool, func(tx pgx.Tx) error {
			_, err := inbox.Reject(ctx, tx, inbox.Rejection{Service: "intake", Tenant: tenantOrDefault(ev.TenantId), Source: "grpc", ContentType: "application/protobuf", Payload: raw, Err: bad})
			return err
		})
		if err != nil {
			return nil, err
		}
		s.Relay.Notify()
		return nil, verr
	}
	var res store.Result
	err := pgx.BeginFunc(ctx, s.Store.Pool, func(tx pgx.Tx) error {
		var err error
		res, err = store.Ingest(ctx, tx, ev)
		return err
	})
	if postgres.IsUniqueViolation(err) {
		return nil, status.Error(codes.Aborted, "the same event is being ingested concurrently; retry")
	}
	if err != nil {
		return nil, err
	}
	s.Relay.Notify()
	return &intakev1.IngestServiceResponse{ServiceId: res.ServiceID, CustomerId: res.CustomerID, Duplicate: res.Duplicate}, nil
}

func tenantOrDefault(t string) string {
	if t == "" {
		return ingest.DefaultTenant
	}
	return t
}

// GetCustomer returns one customer.
func (s *Server) GetCustomer(ctx context.Context, req *intakev1.GetCustomerRequest) (*intakev1.GetCustomerResponse, error) {
	if req.GetId() == "" && req.GetExternalId() == "" {
		return nil, invalid.New("id", "id or external_id is required")
	}
	c, err := s.Store.GetCustomer(ctx, tenantOrDefault(req.GetTenantId()), req.GetId(), req.GetExternalId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Error(codes.NotFound, "no such customer")
	}
	if err != nil {
		return nil, err
	}
	return &intakev1.GetCustomerResponse{Customer: c}, nil
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
	if len(rows) > size {
		rows = rows[:size]
		last := rows[size-1]
		resp.NextPageToken = page.Token(rejectedCursor{At: last.ReceivedAt, ID: last.ID})
	}
	for _, r := range rows {
		resp.RejectedEvents = append(resp.RejectedEvents, &intakev1.RejectedEvent{
			Id: r.ID, TenantId: r.Tenant, Source: r.Source, Field: r.Field, Reason: r.Reason,
			ContentType: r.ContentType, Payload: r.Payload, ReceivedAt: store.Timestamp(r.ReceivedAt),
		})
	}
	return resp, nil
}
