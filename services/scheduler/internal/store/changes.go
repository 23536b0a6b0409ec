package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/scheduler/internal/change"
)

// Approval is a tenant's setting: whether its policy changes need approval,
// who set it last and when (zero when never set).
type Approval struct {
	Tenant    string
	Required  bool
	UpdatedBy string
	UpdatedAt time.Time
}

// PolicyApproval returns the tenant's setting (off when it never set one).
// With share, the row is locked FOR SHARE until tx ends, so a direct write
// that found it off commits before the setting can be turned on.
func PolicyApproval(ctx context.Context, q postgres.Querier, tenant string, share bool) (Approval, error) {
	sql := `SELECT policy_approval, updated_by, updated_at FROM tenant_settings WHERE tenant_id = $1`
	if share {
		sql += ` FOR SHARE`
	}
	a := Approval{Tenant: tenant}
	err := q.QueryRow(ctx, sql, tenant).Scan(&a.Required, &a.UpdatedBy, &a.UpdatedAt)
	if err = translate("policy approval", err); errors.Is(err, ErrNotFound) {
		return a, nil
	}
	return a, err
}

// SetPolicyApproval records the tenant's setting.
func SetPolicyApproval(ctx context.Context, q postgres.Querier, a Approval) error {
	_, err := q.Exec(ctx, `INSERT INTO tenant_settings (tenant_id, policy_approval, updated_by, updated_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant_id) DO UPDATE SET policy_approval = EXCLUDED.policy_approval, updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at`,
		a.Tenant, a.Required, a.UpdatedBy, a.UpdatedAt)
	return translate("set policy approval", err)
}

// InsertChange stores a new proposal.
func InsertChange(ctx context.Context, q postgres.Querier, p change.Proposal) error {
	spec, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("store: policy change: %w", err)
	}
	_, err = q.Exec(ctx, `INSERT INTO policy_changes (id, tenant_id, state, proposed_by, proposed_at, spec) VALUES ($1, $2, $3, $4, $5, $6)`,
		p.ID, p.Tenant, p.State, p.ProposedBy.Subject, p.ProposedAt, spec)
	return translate("insert policy change", err)
}

func scanChange(r pgx.CollectableRow) (change.Proposal, error) {
	var spec []byte
	var p change.Proposal
	if err := r.Scan(&spec); err != nil {
		return p, err
	}
	if err := json.Unmarshal(spec, &p); err != nil {
		return p, fmt.Errorf("%w: policy change: %v", ErrDamaged, err)
	}
	return p, nil
}

// GetChange returns a proposal of the tenant; ErrNotFound when it has none of that id.
func GetChange(ctx context.Context, q postgres.Querier, tenant, id string) (change.Proposal, error) {
	return getChange(ctx, q, tenant, id, "")
}

func getChange(ctx context.Context, q postgres.Querier, tenant, id, lock string) (change.Proposal, error) {
	rows, err := q.Query(ctx, `SELECT spec FROM policy_changes WHERE tenant_id = $1 AND id = $2`+lock, tenant, id)
	if err != nil {
		return change.Proposal{}, translate("get policy change", err)
	}
	p, err := pgx.CollectExactlyOneRow(rows, scanChange)
	return p, translate("get policy change", err)
}

// UpdateChange decides a proposal by closure: within tx its row is locked
// (SELECT … FOR UPDATE), so two approvals of one proposal run one after the
// other; fn gets the proposal and returns it as it is to be saved, and
// whether it changed (nothing is written when not).
func UpdateChange(ctx context.Context, tx pgx.Tx, tenant, id string, fn func(change.Proposal) (change.Proposal, bool, error)) (change.Proposal, error) {
	cur, err := getChange(ctx, tx, tenant, id, " FOR UPDATE")
	if err != nil {
		return change.Proposal{}, err
	}
	next, changed, err := fn(cur)
	if err != nil || !changed {
		return next, err
	}
	spec, err := json.Marshal(next)
	if err != nil {
		return change.Proposal{}, fmt.Errorf("store: policy change: %w", err)
	}
	_, err = tx.Exec(ctx, `UPDATE policy_changes SET state = $3, decided_by = $4, decided_at = $5, spec = $6 WHERE tenant_id = $1 AND id = $2`,
		tenant, id, next.State, next.DecidedBy.Subject, next.DecidedAt, spec)
	return next, translate("update policy change", err)
}

// ChangeQuery selects a page of a tenant's proposals, newest first.
type ChangeQuery struct {
	Tenant string
	// State, when set, keeps the proposals in it.
	State string
	// AfterAt and AfterID are the cursor: the last proposal of the page before.
	AfterAt time.Time
	AfterID string
	Limit   int
}

// ListChanges lists a tenant's proposals, newest first.
func ListChanges(ctx context.Context, q postgres.Querier, cq ChangeQuery) ([]change.Proposal, error) {
	rows, err := q.Query(ctx, `SELECT spec FROM policy_changes
WHERE tenant_id = $1 AND ($2 = '' OR state = $2) AND ($4 = '' OR (proposed_at, id) < ($3, $4))
ORDER BY proposed_at DESC, id DESC LIMIT $5`, cq.Tenant, cq.State, cq.AfterAt, cq.AfterID, cq.Limit)
	if err != nil {
		return nil, translate("list policy changes", err)
	}
	ps, err := pgx.CollectRows(rows, scanChange)
	return ps, translate("list policy changes", err)
}
