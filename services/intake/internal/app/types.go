package app

import (
	"context"
	"slices"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/intake/internal/ingest"
)

// RegisterServiceType adds a tenant's own service type beside the built-in
// ones; registering it again updates its description.
type RegisterServiceType struct {
	Tenant string
	Type   ingest.ServiceType
}

// RegisterServiceType checks and stores the type: not a built-in one, nor
// one Huifang makes itself (ingest.InternalServiceTypes).
func (a *App) RegisterServiceType(ctx context.Context, in RegisterServiceType) error {
	var bad invalid.List
	t := tenant.Parse(&bad, "tenant_id", in.Tenant)
	if err := bad.Err(); err != nil {
		return err
	}
	if err := ingest.ValidateTypeName(in.Type.Name); err != nil {
		return err
	}
	return a.Store.RegisterType(ctx, a.DB, t, in.Type)
}

// ListServiceTypes returns the service types the tenant's events may name:
// the built-in ones, then the tenant's own by name.
func (a *App) ListServiceTypes(ctx context.Context, tenantID string) ([]ingest.ServiceType, error) {
	own, err := a.Store.ServiceTypes(ctx, a.DB, tenantID)
	if err != nil {
		return nil, err
	}
	var out []ingest.ServiceType
	for _, name := range ingest.ServiceTypes() {
		out = append(out, ingest.ServiceType{Name: name, BuiltIn: true})
	}
	// An internal type a tenant registered before that was refused is not
	// one its events may name (ingest.Validate refuses it).
	own = slices.DeleteFunc(own, func(t ingest.ServiceType) bool { return slices.Contains(ingest.InternalServiceTypes(), t.Name) })
	return append(out, own...), nil
}
