package rollup

import (
	"strings"
	"time"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/invalid"
)

// ChurnedAfterMonths is seed 000's (auto dealer): a customer with no service for 6 months or more is churned.
const ChurnedAfterMonths = 6

// WonBack reports whether a service at `at` wins back a customer whose last
// service was at `last`: 6 months or more (calendar months) lay between them.
func WonBack(last, at time.Time) bool {
	return !last.IsZero() && !at.Before(last.AddDate(0, ChurnedAfterMonths, 0))
}

// FromService returns what a completed service adds on its day: the service,
// and a won-back customer when wonBack.
func FromService(ev *eventsv1.ServiceCompleted, wonBack bool) ([]Delta, error) {
	var bad invalid.List
	if ev.GetServiceId() == "" {
		bad.Add("service_id", "is required")
	}
	if ts(ev.GetCompletedAt()).IsZero() {
		bad.Add("completed_at", "is required")
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	k := Key{Tenant: tenantOf(ev.GetTenantId()), Metric: MetricService, Day: Day(ts(ev.GetCompletedAt())), Dims: Dims{
		OrgUnit:         strings.TrimSpace(ev.GetOrgUnit()),
		ServiceType:     strings.TrimSpace(ev.GetServiceType()),
		ProductCategory: strings.TrimSpace(ev.GetProduct().GetCategory()),
	}}
	out := []Delta{{Key: k, N: 1}}
	if wonBack {
		k.Metric = MetricWonBack
		out = append(out, Delta{Key: k, N: 1})
	}
	return out, nil
}
