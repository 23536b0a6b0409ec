package store

import (
	"context"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

// TakeQuota counts one more eligible service in a stratum's sampling quota
// and says whether it is sampled in (policy.Tally.Take, in SQL): the
// upsert locks the stratum's row until the transaction ends, so concurrent
// planners (other consumers, other replicas) count one after the other and
// no two see the same count. The quota is policy.Required's,
// ceil(rate × eligible − 1e-9) in float8 (IEEE doubles, as in Go).
func TakeQuota(ctx context.Context, q postgres.Querier, st policy.Stratum, rate float64) (policy.Sample, error) {
	out := policy.Sample{Stratum: st}
	err := q.QueryRow(ctx, `INSERT INTO sample_quotas AS q (tenant_id, policy_id, step, org_unit, period, eligible, sampled, last_in)
VALUES ($1, $2, $3, $4, $5, 1, 1, true)
ON CONFLICT (tenant_id, policy_id, step, org_unit, period) DO UPDATE SET
  eligible = q.eligible + 1,
  sampled = q.sampled + (q.sampled < ceil($6::float8 * (q.eligible + 1) - 1e-9::float8))::int,
  last_in = q.sampled < ceil($6::float8 * (q.eligible + 1) - 1e-9::float8),
  updated_at = now()
RETURNING eligible, sampled, last_in`,
		st.Tenant, st.PolicyID, st.Step, st.OrgUnit, st.Period, min(rate, 1)).Scan(&out.Tally.Eligible, &out.Tally.Sampled, &out.In)
	if err != nil {
		return out, translate("take sample quota", err)
	}
	return out, nil
}

// UntakeQuota takes back a service TakeQuota counted, in the same
// transaction, when its visit turned out to be planned already (the same
// service planned twice): the service counts once.
func UntakeQuota(ctx context.Context, q postgres.Querier, s policy.Sample) error {
	in := 0
	if s.In {
		in = 1
	}
	_, err := q.Exec(ctx, `UPDATE sample_quotas SET eligible = eligible - 1, sampled = sampled - $6::int, updated_at = now()
WHERE tenant_id = $1 AND policy_id = $2 AND step = $3 AND org_unit = $4 AND period = $5`,
		s.Stratum.Tenant, s.Stratum.PolicyID, s.Stratum.Step, s.Stratum.OrgUnit, s.Stratum.Period, in)
	return translate("untake sample quota", err)
}
