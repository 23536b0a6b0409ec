package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// LockAgent returns one agent and locks its row until the transaction ends
// (its claims wait: store.Eligibility takes the same lock), or
// ErrAgentNotFound.
func LockAgent(ctx context.Context, tx pgx.Tx, tenant, id string) (task.Agent, error) {
	rows, err := tx.Query(ctx, `SELECT `+agentColumns+` FROM agents WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tenant, id)
	if err != nil {
		return task.Agent{}, translate(err, "lock agent "+id, nil)
	}
	a, err := pgx.CollectExactlyOneRow(rows, scanAgent)
	return a, translate(err, "lock agent "+id, ErrAgentNotFound)
}

// SetPresence stores an agent's presence and appends it to the history
// with who set it; the caller holds the agent's lock (LockAgent).
func SetPresence(ctx context.Context, q postgres.Querier, tenant, id string, p task.Presence, by string) (task.Agent, error) {
	rows, err := q.Query(ctx, `WITH h AS (
  INSERT INTO agent_presence (tenant_id, agent_id, presence, reason, set_by, at) VALUES ($1, $2, $3, $4, $5, $6))
UPDATE agents SET presence = $3, presence_reason = $4, presence_since = $6, updated_at = $6
WHERE tenant_id = $1 AND id = $2
RETURNING `+agentColumns, tenant, id, p.State, p.Reason, by, p.Since)
	if err != nil {
		return task.Agent{}, translate(err, "set presence of "+id, nil)
	}
	a, err := pgx.CollectExactlyOneRow(rows, scanAgent)
	return a, translate(err, "set presence of "+id, ErrAgentNotFound)
}

// PresenceChange is one entry of an agent's presence history.
type PresenceChange struct {
	Presence task.Presence
	SetBy    string
}

// PresenceHistory returns an agent's presence changes since a time, oldest
// first, at most limit.
func PresenceHistory(ctx context.Context, q postgres.Querier, tenant, id string, since time.Time, limit int) ([]PresenceChange, error) {
	rows, err := q.Query(ctx, `SELECT presence, reason, at, set_by FROM agent_presence
WHERE tenant_id = $1 AND agent_id = $2 AND at >= $3 ORDER BY at, id LIMIT $4`, tenant, id, since, limit)
	if err != nil {
		return nil, translate(err, "presence history of "+id, nil)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PresenceChange, error) {
		var c PresenceChange
		err := r.Scan(&c.Presence.State, &c.Presence.Reason, &c.Presence.Since, &c.SetBy)
		c.Presence.Since = c.Presence.Since.UTC()
		return c, err
	})
	return out, translate(err, "presence history of "+id, nil)
}
