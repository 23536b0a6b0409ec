package grpcapi

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/enum"
	"github.com/huifang/huifang/pkg/page"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/intake/internal/app"
	"github.com/huifang/huifang/services/intake/internal/store"
)

// SearchCustomers finds customers by name, the last digits of a phone, a
// car's plate or VIN, or the upstream id; answers masked, paged by id.
func (s *Server) SearchCustomers(ctx context.Context, req *intakev1.SearchCustomersRequest) (*intakev1.SearchCustomersResponse, error) {
	size, err := page.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var cur idCursor
	if err := page.Cursor(req.GetPageToken(), &cur); err != nil {
		return nil, err
	}
	list, more, err := s.App.SearchCustomers(ctx, app.SearchQuery{Tenant: tenant.Or(req.GetTenantId()), Name: req.GetName(), Phone: req.GetPhone(),
		Plate: req.GetPlate(), VIN: req.GetVin(), ExternalID: req.GetExternalId()}, size, cur.ID)
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &intakev1.SearchCustomersResponse{}
	if more {
		resp.NextPageToken = page.Token(idCursor{ID: list[len(list)-1].ID})
	}
	for _, c := range list {
		resp.Customers = append(resp.Customers, View(c))
	}
	return resp, nil
}

// timelineCursor is the last entry of a timeline page.
type timelineCursor struct {
	At time.Time `json:"a"`
	ID string    `json:"i"`
}

// GetCustomerTimeline returns a page of one customer's contact ledger in
// time order.
func (s *Server) GetCustomerTimeline(ctx context.Context, req *intakev1.GetCustomerTimelineRequest) (*intakev1.GetCustomerTimelineResponse, error) {
	size, err := page.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var cur timelineCursor
	if err := page.Cursor(req.GetPageToken(), &cur); err != nil {
		return nil, err
	}
	q := app.TimelineQuery{Tenant: tenant.Or(req.GetTenantId()), CustomerID: req.GetCustomerId(), NewestFirst: req.GetNewestFirst(),
		AfterAt: cur.At, AfterID: cur.ID}
	for _, k := range req.GetKinds() { // known kinds, not unspecified: intake.proto's rule
		q.Kinds = append(q.Kinds, enum.Name(k))
	}
	if req.From != nil {
		t := req.GetFrom().AsTime()
		q.From = &t
	}
	if req.To != nil {
		t := req.GetTo().AsTime()
		q.To = &t
	}
	list, more, err := s.App.CustomerTimeline(ctx, q, size)
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &intakev1.GetCustomerTimelineResponse{}
	if more {
		last := list[len(list)-1]
		resp.NextPageToken = page.Token(timelineCursor{At: last.At, ID: last.ID})
	}
	for _, e := range list {
		resp.Entries = append(resp.Entries, timelineEntry(e))
	}
	return resp, nil
}

func timelineEntry(e store.LedgerEntry) *intakev1.TimelineEntry {
	kind, _ := enum.Parse[intakev1.TimelineEntryKind](e.Kind)
	channel, _ := enum.Parse[typesv1.Channel](e.Channel)
	disposition, _ := enum.Parse[typesv1.Disposition](e.Disposition)
	severity, _ := enum.Parse[typesv1.Severity](e.Severity)
	opt := func(t *time.Time) *timestamppb.Timestamp {
		if t == nil {
			return nil
		}
		return timestamppb.New(*t)
	}
	return &intakev1.TimelineEntry{
		Id: e.ID, Kind: kind, At: timestamppb.New(e.At), CustomerId: e.CustomerID,
		ServiceId: e.ServiceID, VisitId: e.VisitID, TaskId: e.TaskID, ComplaintId: e.ComplaintID, RecordId: e.RecordID,
		AppointmentId: e.AppointmentID, MessageId: e.MessageID, ServiceType: e.ServiceType, Channel: channel, Disposition: disposition,
		Status: e.Status, AgentId: e.AgentID, Severity: severity, Score: e.Score, DueAt: opt(e.DueAt), StartsAt: opt(e.StartsAt),
		EndsAt: opt(e.EndsAt), Attempt: e.Attempt,
	}
}
