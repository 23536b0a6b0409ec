package app

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/engine"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

// remileage moves the customer's pending visits of mileage anchors ("3
// months or 3,000 km, whichever first") to where the odometer reading of
// svc puts them (issue 16: later readings move reminders; seed 000 auto:
// "ask the mileage"): for each, the driving habit from the reading of the
// service it follows to svc's (engine.Remileage). A moved visit is saved
// and announced again (VisitPlanned), as a rescheduled one is. It returns
// pending with the moved visits as they are now.
func remileage(ctx context.Context, tx pgx.Tx, svc policy.Service, pending []visit.Visit, prefs contact.Prefs) ([]visit.Visit, error) {
	if svc.OdometerKm <= 0 || len(pending) == 0 {
		return pending, nil
	}
	var (
		rules    contact.Rules
		loaded   bool
		policies = map[string]*policy.Policy{}
		moved    []visit.Visit
	)
	for i, v := range pending {
		if v.PolicyID == policy.FollowUpID || v.Occurrence != 0 || v.CustomerChosen || v.ServiceID == svc.ID ||
			!v.ServiceCompletedAt.Before(svc.CompletedAt) {
			continue
		}
		p, err := policyVersion(ctx, tx, policies, v)
		if err != nil {
			return nil, err
		}
		if p == nil || v.Step >= len(p.Steps) || p.Steps[v.Step].Anchor.MileageKm <= 0 {
			continue
		}
		base, err := followedService(ctx, tx, v)
		if err != nil {
			return nil, err
		}
		if !loaded {
			if rules, err = rulesOf(ctx, tx, svc.Tenant); err != nil {
				return nil, err
			}
			loaded = true
		}
		n, ok := engine.Remileage(*p, v.Visit, base, svc, rules, prefs)
		if !ok || !pending[i].Remileage(n, svc.CompletedAt) {
			continue
		}
		moved = append(moved, pending[i])
	}
	if err := saveVisits(ctx, tx, moved); err != nil {
		return nil, err
	}
	for _, v := range moved {
		if err := addPlanned(ctx, tx, v); err != nil {
			return nil, err
		}
	}
	return pending, nil
}
