package app

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	privacyv1 "github.com/huifang/huifang/proto/huifang/privacy/v1"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/customerdata"
	"github.com/huifang/huifang/services/intake/internal/store"
)

// Peers are the other services' customer-data APIs, which intake asks for
// their part of an export, by service name.
type Peers map[string]privacyv1.CustomerDataServiceClient

// PeerNames are the services whose part every export holds, in pipeline order.
func PeerNames() []string { return []string{"scheduler", "dispatch", "feedback", "analytics"} }

// Exports gathers a person's export: intake's own rows (Own) and every
// peer's part.
type Exports struct {
	Own   customerdata.Source
	Peers Peers
	// Off says why exports cannot be gathered (a peer or the service's
	// account not configured); empty when they can.
	Off string
	// Timeout bounds each peer's answer; zero: 30 s.
	Timeout time.Duration
}

// ExportSkip are intake's tables the export leaves out: the customer's
// wrapped data key is key material, not data about the person; the
// customer's row is the "customer" section (ExportArchive), contacts opened.
func ExportSkip() []string { return []string{"customer_keys"} }

// ExportCustomerData asks for everything Huifang holds about a customer.
type ExportCustomerData struct {
	Tenant, CustomerID string
	// Reason says why (3 to 200 characters); written to every service's audit log.
	Reason string
}

// ExportCustomerData gathers everything Huifang holds about a customer into
// one document: intake's archive (the contacts opened) and rows, and each
// peer's part, asked on intake's own account on behalf of the caller. Every
// service writes its part to its audit log (customer.export), intake last,
// naming the services that answered. A peer that does not answer fails the
// whole export (Unavailable): an export missing a part would say less than
// is held.
func (a *App) ExportCustomerData(ctx context.Context, in ExportCustomerData) (map[string]any, error) {
	req := customerdata.Request{Tenant: in.Tenant, CustomerID: in.CustomerID, Reason: strings.TrimSpace(in.Reason)}
	if err := req.Check(ctx); err != nil {
		return nil, err
	}
	if a.Exports == nil || a.Exports.Off != "" {
		why := "not configured"
		if a.Exports != nil {
			why = a.Exports.Off
		}
		return nil, status.Error(codes.FailedPrecondition, "exports are off: "+why+" (docs/privacy.md, \"Export\")")
	}
	actor := audit.By(ctx, Service)
	own, err := a.Exports.Own.Export(ctx, in.Tenant, in.CustomerID)
	if err != nil {
		return nil, err
	}
	peers := PeerNames()
	parts := make([]map[string]any, len(peers))
	g, gctx := errgroup.WithContext(ctx)
	for i, name := range peers {
		g.Go(func() error {
			part, err := a.peerPart(gctx, name, req, actor.Subject)
			parts[i] = part
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	now := a.Now()
	if err := customerdata.Record(ctx, a.Exports.Own.Pool, Service, req, own, now); err != nil {
		return nil, err
	}
	doc := map[string]any{
		"tenant_id": in.Tenant, "customer_id": in.CustomerID, "exported_at": now.UTC().Format(time.RFC3339Nano),
		"exported_by": actor.Subject, "reason": req.Reason, Service: own,
	}
	for i, name := range peers {
		doc[name] = parts[i]
	}
	return doc, nil
}

// peerPart asks one peer for its part.
func (a *App) peerPart(ctx context.Context, name string, req customerdata.Request, by string) (map[string]any, error) {
	c, ok := a.Exports.Peers[name]
	if !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "exports are off: no address for %s", name)
	}
	timeout := a.Exports.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// A peer restarting is waited for, up to the timeout.
	resp, err := c.ExportCustomerData(ctx, &privacyv1.ExportCustomerDataRequest{TenantId: req.Tenant, CustomerId: req.CustomerID,
		Reason: req.Reason, OnBehalfOf: by}, grpc.WaitForReady(true))
	if err != nil {
		code := codes.Unavailable
		if s, ok := status.FromError(err); ok && s.Code() == codes.InvalidArgument {
			code = codes.Internal // intake checked the request: a peer refusing it is a fault of ours
		}
		return nil, status.Errorf(code, "export: %s did not give its part, so nothing is exported: %v", name, err)
	}
	b, err := protojson.Marshal(resp.GetData())
	if err != nil {
		return nil, fmt.Errorf("export: %s: %w", name, err)
	}
	part := map[string]any{}
	if err := json.Unmarshal(b, &part); err != nil {
		return nil, fmt.Errorf("export: %s: %w", name, err)
	}
	return part, nil
}

// ExportArchive is intake's own section of an export, read in the export's
// snapshot: the customer as the archive holds it, contacts opened (the
// person's own data, given to them); NotFound for a customer the archive
// does not hold, before any other service is asked. An erased customer
// shows no contact; the erasure itself is in the audit log's section.
func (a *App) ExportArchive(ctx context.Context, tx pgx.Tx, tenant, customerID string) (map[string]any, error) {
	c, err := a.Store.Customer(ctx, tx, store.CustomerKey{Tenant: tenant, ID: customerID})
	if err != nil {
		return nil, notFound("customer", err)
	}
	var prefs json.RawMessage
	if c.Preferences != nil {
		if prefs, err = protojson.Marshal(c.Preferences.Proto()); err != nil {
			return nil, fmt.Errorf("export: preferences: %w", err)
		}
	}
	customer := map[string]any{
		"id": c.ID, "external_id": c.ExternalID, "name": c.Name, "phone": c.Phone, "email": c.Email,
		"kind": c.KindOrDefault(), "referred_by": c.ReferredBy, "org_unit": c.OrgUnit, "owner_ids": slices.Clone(c.Owners),
		"tier": c.Tier, "version": c.Version, "updated_at": c.UpdatedAt.UTC().Format(time.RFC3339Nano),
		"source_updated_at": c.SourceUpdatedAt.UTC().Format(time.RFC3339Nano),
	}
	if prefs != nil {
		customer["preferences"] = prefs
	}
	return map[string]any{"customer": customer}, nil
}
