package app

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// UpsertOrgUnit normalizes an org unit and creates or updates it: its
// parent must exist (task.ErrParentNotFound) and it must not become its own
// ancestor (task.ErrCycle). One writer of a tenant's tree at a time.
func (a *App) UpsertOrgUnit(ctx context.Context, u task.OrgUnit) (task.OrgUnit, error) {
	if err := task.NormalizeOrgUnit(&u); err != nil {
		return task.OrgUnit{}, err
	}
	var out task.OrgUnit
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		if err := store.LockOrgTree(ctx, tx, u.Tenant); err != nil {
			return err
		}
		if u.ParentID != "" {
			exists, ancestors, err := store.Ancestors(ctx, tx, u.Tenant, u.ParentID)
			if err != nil {
				return err
			}
			if err := u.CheckParent(exists, ancestors); err != nil {
				return err
			}
		}
		now := a.Now()
		var err error
		if out, err = store.SaveOrgUnit(ctx, tx, u, now); err != nil {
			return err
		}
		return a.auditTx(ctx, tx, out.Tenant, "org_unit.upsert", audit.Target{Kind: "org_unit", ID: out.ID},
			audit.Detail{"parent_id": out.ParentID, "kind": out.Kind, "leader_id": out.LeaderID}, now)
	})
	return out, err
}

// ListOrgUnits lists the tenant's org units, parents before children.
func (a *App) ListOrgUnits(ctx context.Context, tenant string) ([]task.OrgUnit, error) {
	return store.ListOrgUnits(ctx, a.DB, tenant)
}

// UpsertAgent normalizes an agent and registers or updates it; the audit
// log records the change (agent.create, agent.update) with the fields that
// changed, and the role it had when that changed.
func (a *App) UpsertAgent(ctx context.Context, ag task.Agent) (task.Agent, error) {
	if err := task.NormalizeAgent(&ag); err != nil {
		return task.Agent{}, err
	}
	var out task.Agent
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		now := a.Now()
		before, err := store.Agent(ctx, tx, ag.Tenant, ag.ID)
		existed := err == nil
		if err != nil && !errors.Is(err, store.ErrAgentNotFound) {
			return err
		}
		if out, err = store.UpsertAgent(ctx, tx, ag, now); err != nil {
			return err
		}
		action, detail := "agent.create", audit.Detail{"role": out.Role, "org_unit": out.OrgUnit, "groups": out.Groups, "active": !out.Inactive}
		if existed {
			action, detail["changed"] = "agent.update", agentChanges(before, out)
			if before.Role != out.Role {
				detail["role_before"] = before.Role
			}
		}
		return a.auditTx(ctx, tx, out.Tenant, action, audit.Target{Kind: "agent", ID: out.ID}, detail, now)
	})
	return out, err
}

// agentChanges names the fields of an agent that changed (not their values:
// a name is personal data).
func agentChanges(before, after task.Agent) []string {
	changed := []string{}
	for _, f := range []struct {
		name string
		same bool
	}{
		{"name", before.Name == after.Name},
		{"role", before.Role == after.Role},
		{"org_unit", before.OrgUnit == after.OrgUnit},
		{"groups", slices.Equal(before.Groups, after.Groups)},
		{"skills", reflect.DeepEqual(before.Skills, after.Skills)},
		{"shift", reflect.DeepEqual(before.Shift, after.Shift)},
		{"capacity", before.Capacity == after.Capacity},
		{"active", before.Inactive == after.Inactive},
	} {
		if !f.same {
			changed = append(changed, f.name)
		}
	}
	return changed
}

// ListAgents lists the tenant's agents by id after afterID, at most limit;
// only those of group when it is set.
func (a *App) ListAgents(ctx context.Context, tenant, group string, limit int, afterID string) ([]task.Agent, error) {
	return store.ListAgents(ctx, a.DB, tenant, strings.TrimSpace(group), limit, afterID)
}

// leaderGroups returns a leader and the groups it oversees (task.Oversees);
// store.ErrAgentNotFound for an unknown one.
func (a *App) leaderGroups(ctx context.Context, tenant, leaderID string) (task.Agent, []string, error) {
	leader, err := store.Agent(ctx, a.DB, tenant, leaderID)
	if err != nil {
		return task.Agent{}, nil, err
	}
	units, err := store.UnitsLedBy(ctx, a.DB, tenant, leaderID)
	if err != nil {
		return task.Agent{}, nil, err
	}
	return leader, task.Oversees(leader, units), nil
}

// LeaderGroups returns the groups a leader oversees: its own groups, the
// org units it leads and every unit below them.
func (a *App) LeaderGroups(ctx context.Context, tenant, leaderID string) ([]string, error) {
	_, groups, err := a.leaderGroups(ctx, tenant, leaderID)
	return groups, err
}

// groups resolves the group filters of a listing: one group, a leader's
// groups (both: their intersection), or nil for any. An unknown leader is
// bad input (leader_id).
func (a *App) groups(ctx context.Context, tenant, group, leaderID string) ([]string, error) {
	group, leaderID = strings.TrimSpace(group), strings.TrimSpace(leaderID)
	if leaderID == "" {
		if group == "" {
			return nil, nil
		}
		return []string{group}, nil
	}
	groups, err := a.LeaderGroups(ctx, tenant, leaderID)
	if errors.Is(err, store.ErrAgentNotFound) {
		return nil, invalid.New("leader_id", "must name an agent of the tenant")
	}
	if err != nil {
		return nil, err
	}
	if group == "" {
		return groups, nil
	}
	if slices.Contains(groups, group) {
		return []string{group}, nil
	}
	return []string{}, nil
}
