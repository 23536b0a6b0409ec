package audit

import (
	"context"
	"encoding/hex"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/huifang/huifang/proto/huifang/audit/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/page"
	"github.com/huifang/huifang/pkg/tenant"
)

// Server serves huifang.audit.v1.AuditService over the audit log of the
// schema its pool reads: every service registers one over its own log
// (pkg/app). The guard has bound the request's tenant_id to the caller.
type Server struct {
	auditv1.UnimplementedAuditServiceServer
	Pool *pgxpool.Pool
}

// tenantOf returns the tenant a request names: its tenant_id, else the
// caller's tenant ("*" for a platform operator), else the default tenant.
func tenantOf(ctx context.Context, requested string) (string, error) {
	t := requested
	if t == "" {
		t = tenant.Default
		if p, ok := auth.From(ctx); ok {
			t = p.Tenant
		}
	}
	if t != auth.AllTenants && !tenant.Valid(t) {
		return "", invalid.New("tenant_id", tenant.Rule+` or "*"`)
	}
	return t, nil
}

type listCursor struct {
	ID int64 `json:"i"`
}

// ListAuditEvents lists a tenant's entries, newest first. A platform
// operator reads only the log of what was done for every tenant ("*").
func (s *Server) ListAuditEvents(ctx context.Context, req *auditv1.ListAuditEventsRequest) (*auditv1.ListAuditEventsResponse, error) {
	var bad invalid.List
	t, err := tenantOf(ctx, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	if p, ok := auth.From(ctx); ok && p.Has(auth.PlatformOperator) && t != auth.AllTenants {
		return nil, status.Error(codes.PermissionDenied, `permission denied: tenant_id: a platform operator reads only the log of what was done for every tenant ("*")`)
	}
	f := Filter{Tenant: t, Action: req.GetAction(), Actor: req.GetActor(), TargetKind: req.GetTargetKind(), TargetID: req.GetTargetId()}
	f.From = timeOf(&bad, "from", req.GetFrom())
	f.To = timeOf(&bad, "to", req.GetTo())
	if !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		bad.Add("to", "must be after from")
	}
	size, err := page.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var cur listCursor
	if err := page.Cursor(req.GetPageToken(), &cur); err != nil {
		return nil, err
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	events, err := List(ctx, s.Pool, f, cur.ID, size+1)
	if err != nil {
		return nil, err
	}
	resp := &auditv1.ListAuditEventsResponse{}
	events, resp.NextPageToken = page.Trim(events, size, func(last Event) any { return listCursor{ID: last.ID} })
	for _, e := range events {
		resp.Events = append(resp.Events, Proto(e))
	}
	return resp, nil
}

func timeOf(bad *invalid.List, field string, ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	if err := ts.CheckValid(); err != nil {
		bad.Add(field, "must be a valid timestamp")
		return time.Time{}
	}
	return ts.AsTime()
}

// VerifyAuditLog walks a tenant's chain and reports its first broken link.
func (s *Server) VerifyAuditLog(ctx context.Context, req *auditv1.VerifyAuditLogRequest) (*auditv1.VerifyAuditLogResponse, error) {
	t, err := tenantOf(ctx, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	v, err := Verify(ctx, s.Pool, t)
	if err != nil {
		return nil, err
	}
	resp := &auditv1.VerifyAuditLogResponse{Ok: v.OK(), EntriesChecked: v.Checked, LastSeq: v.LastSeq, LastHash: hex.EncodeToString(v.LastHash)}
	if v.Broken != nil {
		resp.FirstBrokenSeq, resp.Reason = v.Broken.Seq, v.Broken.Reason
	}
	return resp, nil
}

// Proto is how the API shows an entry.
func Proto(e Event) *auditv1.AuditEvent {
	return &auditv1.AuditEvent{
		TenantId: e.Tenant, Seq: e.Seq, Actor: e.Actor.Subject, ActorRoles: e.Actor.Roles, Action: e.Action,
		TargetKind: e.Target.Kind, TargetId: e.Target.ID, Detail: string(e.Detail), OccurredAt: timestamppb.New(e.At),
		PrevHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash),
	}
}
