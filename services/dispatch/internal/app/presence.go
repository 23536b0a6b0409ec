package app

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// PresenceCall is one SetAgentPresence: the agent (the caller's own, the
// guard fills it), the presence (task.PresenceAvailable, …) and a break's
// reason code.
type PresenceCall struct {
	Tenant  string
	AgentID string
	State   string
	Reason  string
}

// SetPresence sets an agent's presence (task.NewPresence checks it) and
// keeps the change in the agent's presence history with who set it. An
// agent sets its own; another agent may be set only offline, by a leader
// overseeing one of its groups or a director (task.ErrPresence otherwise);
// that is written to the audit log. Setting the presence the agent has
// changes nothing (its time in state goes on). A change wakes long-polling
// claims: tasks an owner on a break held back go to others.
func (a *App) SetPresence(ctx context.Context, c PresenceCall) (task.Agent, error) {
	c.AgentID = strings.TrimSpace(c.AgentID)
	now := a.Now()
	p, err := task.NewPresence(c.State, c.Reason, now)
	if err != nil {
		return task.Agent{}, err
	}
	callerID, wide, groups := c.AgentID, true, []string(nil)
	if who, ok := auth.Restricted(ctx, auth.Director); ok {
		callerID, wide = who.Actor(), false
		if callerID != c.AgentID {
			if groups, err = a.LeaderGroups(ctx, c.Tenant, callerID); err != nil && !errors.Is(err, store.ErrAgentNotFound) {
				return task.Agent{}, err
			}
		}
	} else if who, ok := auth.From(ctx); ok && who.Actor() != "" {
		callerID = who.Actor()
	}
	var out task.Agent
	changed := false
	err = a.inTx(ctx, func(tx pgx.Tx) error {
		ag, err := store.LockAgent(ctx, tx, c.Tenant, c.AgentID)
		if err != nil {
			return err
		}
		if err := task.MaySetPresence(callerID, wide, groups, ag, p.State); err != nil {
			return err
		}
		if ag.Presence.State == p.State && ag.Presence.Reason == p.Reason {
			out = ag
			return nil
		}
		changed = true
		if out, err = store.SetPresence(ctx, tx, c.Tenant, c.AgentID, p, callerID); err != nil {
			return err
		}
		if callerID == c.AgentID {
			return nil
		}
		return a.auditTx(ctx, tx, c.Tenant, "agent.presence", audit.Target{Kind: "agent", ID: c.AgentID},
			audit.Detail{"presence": p.State, "before": ag.Presence.State}, now)
	})
	if err != nil {
		return task.Agent{}, err
	}
	if changed {
		a.log().InfoContext(ctx, "agent presence", "agent", c.AgentID, "presence", p.State, "reason", p.Reason, "by", callerID)
		a.wake()
	}
	return out, nil
}
