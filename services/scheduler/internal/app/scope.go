package app

import (
	"context"

	"github.com/huifang/huifang/pkg/auth"
)

// visitsInScope holds a leader (who is neither director nor tenant admin)
// to the visits of the org units it leads (the org_units of its token);
// field names the request field that carries the unit.
func visitsInScope(ctx context.Context, field, unit string) error {
	p, ok := auth.Restricted(ctx, auth.Director, auth.TenantAdmin)
	switch {
	case !ok:
		return nil
	case unit == "" && field == "org_unit":
		return auth.Deny(field, "a leader names one of the org units it leads")
	case !p.InUnits(unit):
		return auth.Deny(field, "the visit belongs to an org unit the caller does not lead")
	}
	return nil
}
