package rollup

import (
	"strings"
	"time"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/tenant"
)

// ChurnedAfterMonths is seed 000's (auto dealer): a customer with no service for 6 months or more is churned.
const ChurnedAfterMonths = 6

// WonBack reports whether a service at `at` wins back a customer whose last
// service was at `last`: 6 months or more (calendar months) lay between them.
func WonBack(last, at time.Time) bool {
	return !last.IsZero() && !at.Before(last.AddDate(0, ChurnedAfterMonths, 0))
}

// Customer is what analytics knows of one customer: the time of the latest
// service handled (for "won back", seed 000).
type Customer struct {
	Tenant     string
	CustomerID string
	// LastServiceAt is the latest service handled; zero for a new customer.
	LastServiceAt time.Time
}

// Serve moves the customer's latest service to at when at is later, and
// reports whether that service won the customer back: 6 months or more
// after the latest service handled before it. A service not later than the
// latest changes nothing and wins nobody back.
func (c *Customer) Serve(at time.Time) bool {
	if !c.LastServiceAt.IsZero() && !at.After(c.LastServiceAt) {
		return false
	}
	last := c.LastServiceAt
	c.LastServiceAt = at
	return WonBack(last, at)
}

// CheckService refuses a ServiceCompleted without service_id or
// completed_at, with an *invalid.Error naming the fields.
func CheckService(ev *eventsv1.ServiceCompleted) error {
	var bad invalid.List
	if ev.GetServiceId() == "" {
		bad.Add("service_id", "is required")
	}
	if ts(ev.GetCompletedAt()).IsZero() {
		bad.Add("completed_at", "is required")
	}
	return bad.Err()
}

// FromService returns what a completed service adds on its day: the service,
// and a won-back customer when wonBack. It refuses the event as CheckService does.
func FromService(ev *eventsv1.ServiceCompleted, wonBack bool) ([]Delta, error) {
	if err := CheckService(ev); err != nil {
		return nil, err
	}
	k := Key{Tenant: tenant.Of(ev), Metric: MetricService, Day: Day(ts(ev.GetCompletedAt())), Dims: Dims{
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
