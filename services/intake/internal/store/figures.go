package store

import (
	"context"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/tier"
)

// Figures loads the figures the tier rules read into the customers' Metrics
// (customers of one tenant), counted in scope: spend, claims and cars of the
// services completed since scope.Since, and the referrals. One query,
// however many customers (the test that referred_by is not empty says what
// the planner cannot prove from an array of more than 100 ids: that the
// partial index of referrals holds every row it needs).
func (s *Store) Figures(ctx context.Context, q postgres.Querier, tenant string, scope tier.Scope, cs []*archive.Customer) error {
	if len(cs) == 0 {
		return nil
	}
	ids, exts := make([]string, len(cs)), make([]string, len(cs))
	byID := make(map[string]*archive.Customer, len(cs))
	for i, c := range cs {
		ids[i], exts[i] = c.ID, c.ExternalID
		byID[c.ID] = c
		c.Metrics = tier.Metrics{Kind: c.KindOrDefault()}
	}
	rows, err := q.Query(ctx, `WITH c AS (SELECT * FROM unnest($1::text[], $2::text[]) AS c (id, ext))
SELECT c.id, coalesce(s.spend, 0), coalesce(s.claims, 0), coalesce(s.cars, 0), coalesce(r.n, 0)
FROM c
LEFT JOIN (SELECT customer_id, sum(amount_minor)::bigint AS spend, sum(claim_amount_minor)::bigint AS claims,
    count(DISTINCT vin) FILTER (WHERE vin <> '' AND service_type = ANY($5)) AS cars
  FROM services WHERE customer_id = ANY($1) AND completed_at > $3 GROUP BY customer_id) s ON s.customer_id = c.id
LEFT JOIN (SELECT referred_by, count(*) AS n FROM customers
  WHERE tenant_id = $4 AND referred_by = ANY($2) AND referred_by <> '' GROUP BY referred_by) r ON r.referred_by = c.ext`,
		ids, exts, scope.Since, tenant, scope.CarServiceTypes)
	if err != nil {
		return wrap("tier figures", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id string
			m  tier.Metrics
		)
		if err := rows.Scan(&id, &m.SpendYearMinor, &m.ClaimsYearMinor, &m.CarsYear, &m.Referrals); err != nil {
			return wrap("tier figures", err)
		}
		if c := byID[id]; c != nil {
			m.Kind = c.KindOrDefault()
			c.Metrics = m
		}
	}
	return wrap("tier figures", rows.Err())
}
