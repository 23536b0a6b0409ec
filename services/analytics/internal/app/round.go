package app

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/auth"

	"github.com/huifang/huifang/services/analytics/internal/report"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// GeneralManager is the department a round report is written for (seed
// 000, cement logistics: mismatches and the round's report go to the
// general manager; feedback routes delivery_mismatch complaints to it).
const GeneralManager = "general_manager"

// RoundOf names a round report: a tenant's (org unit's, "" for all) visits
// of one policy due in the 24 hours from DayStart.
type RoundOf struct {
	Tenant, OrgUnit, PolicyID string
	DayStart                  time.Time
	// Format is how the caller has it rendered ("csv", "html"): the audit
	// log records it.
	Format string
}

// RoundReport computes the written report of a round of delivery
// confirmations and records it in the audit log (report.round) in the
// transaction that read it.
func (a *App) RoundReport(ctx context.Context, of RoundOf) (r *report.Round, err error) {
	if err := roundInScope(ctx, of.OrgUnit); err != nil {
		return nil, err
	}
	err = pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		r = &report.Round{Tenant: of.Tenant, OrgUnit: of.OrgUnit, PolicyID: of.PolicyID, From: of.DayStart, To: of.DayStart.Add(24 * time.Hour)}
		if r.Visits, err = store.RoundVisits(ctx, tx, of.Tenant, of.PolicyID, of.OrgUnit, r.From, r.To, report.MaxRound); err != nil {
			return err
		}
		d := audit.Detail{"org_unit": of.OrgUnit, "policy_id": of.PolicyID, "day_start": of.DayStart.Format(time.RFC3339)}
		if of.Format != "" {
			d["format"] = of.Format
		}
		return a.auditTx(ctx, tx, of.Tenant, "report.round", audit.Target{Kind: "report", ID: r.Name()}, d)
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// roundInScope lets the director read any round, and the general
// manager's department owner (the report is addressed to it); a leader
// reads the rounds of an org unit it leads; the owner of another
// department none (the permission table lets only these roles call).
func roundInScope(ctx context.Context, unit string) error {
	p, ok := auth.Restricted(ctx, auth.Director, auth.TenantAdmin)
	switch {
	case !ok:
		return nil
	case p.Has(auth.DepartmentOwner) && p.InDepartments(GeneralManager):
		return nil
	case !p.Has(auth.Leader):
		return auth.Deny("", "a department owner reads the round report only for the department "+GeneralManager)
	case unit == "":
		return auth.Deny("org_unit", "a leader names one of the org units it leads")
	case !p.InUnits(unit):
		return auth.Deny("org_unit", "not an org unit the caller leads")
	}
	return nil
}
