package app

import (
	"context"

	"github.com/huifang/huifang/pkg/auth"
)

// unitInScope holds a leader to the figures of the org units it leads (the
// org_units of its token): it names one of them; a director, a tenant admin
// and a department owner (problems) read the whole tenant.
func unitInScope(ctx context.Context, unit string) error {
	p, ok := auth.Restricted(ctx, auth.Director, auth.TenantAdmin, auth.DepartmentOwner)
	switch {
	case !ok:
		return nil
	case unit == "":
		return auth.Deny("filter.org_unit", "a leader names one of the org units it leads")
	case !p.InUnits(unit):
		return auth.Deny("filter.org_unit", "not an org unit the caller leads")
	}
	return nil
}
