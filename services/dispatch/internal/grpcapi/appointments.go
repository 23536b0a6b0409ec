package grpcapi

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/page"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// BookAppointment agrees an on-site visit's window with the customer.
func (s *Server) BookAppointment(ctx context.Context, req *dispatchv1.BookAppointmentRequest) (*dispatchv1.BookAppointmentResponse, error) {
	var bad invalid.List
	p, _ := auth.From(ctx)
	taskID, agentID := taskAndAgent(&bad, req.GetTaskId(), p.Actor())
	token := req.GetLeaseToken()
	w := window(&bad, req.GetStartsAt(), req.GetEndsAt())
	if err := bad.Err(); err != nil {
		return nil, err
	}
	ap, err := s.App.BookAppointment(ctx, app.Booking{Tenant: tenant.Or(req.GetTenantId()), TaskID: taskID, AgentID: agentID, Token: token,
		Window: w, Note: req.GetAddressNote()})
	if err != nil {
		return nil, appointmentStatus(err)
	}
	return &dispatchv1.BookAppointmentResponse{Appointment: appointmentProto(ap)}, nil
}

// MoveAppointment moves a booked appointment and its reminder.
func (s *Server) MoveAppointment(ctx context.Context, req *dispatchv1.MoveAppointmentRequest) (*dispatchv1.MoveAppointmentResponse, error) {
	var bad invalid.List
	id := strings.TrimSpace(req.GetAppointmentId()) // not blank: dispatch.proto's rule
	w := window(&bad, req.GetStartsAt(), req.GetEndsAt())
	if err := bad.Err(); err != nil {
		return nil, err
	}
	ap, err := s.App.MoveAppointment(ctx, app.Move{Tenant: tenant.Or(req.GetTenantId()), AppointmentID: id, Window: w, Reason: req.GetReason(),
		Note: req.AddressNote})
	if err != nil {
		return nil, appointmentStatus(err)
	}
	return &dispatchv1.MoveAppointmentResponse{Appointment: appointmentProto(ap)}, nil
}

// CancelAppointment cancels a booked appointment and its reminder.
func (s *Server) CancelAppointment(ctx context.Context, req *dispatchv1.CancelAppointmentRequest) (*dispatchv1.CancelAppointmentResponse, error) {
	id := strings.TrimSpace(req.GetAppointmentId()) // not blank: dispatch.proto's rule
	ap, err := s.App.CancelAppointment(ctx, tenant.Or(req.GetTenantId()), id, req.GetReason())
	if err != nil {
		return nil, appointmentStatus(err)
	}
	return &dispatchv1.CancelAppointmentResponse{Appointment: appointmentProto(ap)}, nil
}

// ListAppointments lists appointments by start.
func (s *Server) ListAppointments(ctx context.Context, req *dispatchv1.ListAppointmentsRequest) (*dispatchv1.ListAppointmentsResponse, error) {
	var bad invalid.List
	size, err := page.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var cur app.AppointmentCursor
	if err := page.Cursor(req.GetPageToken(), &cur); err != nil {
		return nil, err
	}
	loc := time.UTC
	if tz := strings.TrimSpace(req.GetTimeZone()); tz != "" {
		if loc, err = time.LoadLocation(tz); err != nil {
			bad.Add("time_zone", "must be an IANA time zone, e.g. Asia/Shanghai")
			loc = time.UTC
		}
	}
	var day time.Time
	if d := strings.TrimSpace(req.GetDay()); d != "" {
		if day, err = time.ParseInLocation(time.DateOnly, d, loc); err != nil {
			bad.Add("day", "must be a date, YYYY-MM-DD")
		}
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	list, err := s.App.ListAppointments(ctx, app.AppointmentQuery{Tenant: tenant.Or(req.GetTenantId()), AgentID: req.GetAgentId(),
		Group: req.GetGroup(), Day: day, IncludeCancelled: req.GetIncludeCancelled(), After: cur, Limit: size + 1})
	if err != nil {
		return nil, appointmentStatus(err)
	}
	resp := &dispatchv1.ListAppointmentsResponse{}
	list, resp.NextPageToken = page.Trim(list, size, func(last task.Appointment) any {
		return app.AppointmentCursor{StartsAt: last.StartsAt, ID: last.ID}
	})
	for _, ap := range list {
		resp.Appointments = append(resp.Appointments, appointmentProto(ap))
	}
	return resp, nil
}

// upsertKindTemplate stores a reminder or script template (UpsertTemplate
// with a kind).
func (s *Server) upsertKindTemplate(ctx context.Context, p *dispatchv1.Template) (*dispatchv1.UpsertTemplateResponse, error) {
	stored, err := s.App.UpsertKindTemplate(ctx, message.Template{Tenant: tenant.Or(p.GetTenantId()), Kind: p.GetKind(),
		ServiceType: p.GetServiceType(), Channel: p.GetChannel(), Subject: p.GetSubject(), Greeting: p.GetGreeting(), Body: p.GetBody(),
		Footer: p.GetFooter(), Preset: p.GetPreset()})
	if err != nil {
		return nil, statusOf(err)
	}
	return &dispatchv1.UpsertTemplateResponse{Template: &dispatchv1.Template{TenantId: stored.Tenant, Channel: stored.Channel,
		Subject: stored.Subject, Greeting: stored.Greeting, Body: stored.Body, Footer: stored.Footer, Kind: stored.Kind,
		ServiceType: stored.ServiceType}}, nil
}

// window reads a window's ends (both required: dispatch.proto's rules);
// the rules on the window are the app's (task.CheckWindow).
func window(bad *invalid.List, start, end *timestamppb.Timestamp) task.Window {
	var w task.Window
	for _, f := range []struct {
		name string
		ts   *timestamppb.Timestamp
		out  *time.Time
	}{{"starts_at", start, &w.StartsAt}, {"ends_at", end, &w.EndsAt}} {
		if f.ts == nil {
			continue
		}
		if !f.ts.IsValid() {
			bad.Add(f.name, "must be a valid time")
			continue
		}
		*f.out = f.ts.AsTime()
	}
	return w
}

// appointmentStatus maps the refusals of appointments, then as statusOf.
func appointmentStatus(err error) error {
	switch {
	case errors.Is(err, store.ErrAppointmentNotFound):
		return status.Error(codes.NotFound, "no such appointment in the tenant")
	case errors.Is(err, task.ErrOverlap):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, task.ErrAlreadyBooked):
		return status.Error(codes.FailedPrecondition, "the task already has a booked appointment; move it (MoveAppointment) instead")
	case errors.Is(err, task.ErrAppointmentCancelled):
		return status.Error(codes.FailedPrecondition, "the appointment is cancelled; book anew")
	}
	return statusOf(err)
}

func appointmentProto(a task.Appointment) *dispatchv1.Appointment {
	return &dispatchv1.Appointment{Id: a.ID, TenantId: a.Tenant, TaskId: a.TaskID, VisitId: a.VisitID, CustomerId: a.CustomerID,
		AgentId: a.AgentID, Group: a.Group, StartsAt: timestamp(a.StartsAt), EndsAt: timestamp(a.EndsAt), TimeZone: a.TimeZone,
		AddressNote: a.AddressNote, Status: a.Status, CancelReason: a.CancelReason, RemindAt: timestamp(a.RemindAt),
		ReminderStatus: a.ReminderStatus, Version: int32(a.Version), CreatedAt: timestamp(a.CreatedAt), UpdatedAt: timestamp(a.UpdatedAt)}
}
