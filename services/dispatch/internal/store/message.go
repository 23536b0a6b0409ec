package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// UpsertTemplate stores a normalized template.
func UpsertTemplate(ctx context.Context, q postgres.Querier, t message.Template, now time.Time) (message.Template, error) {
	_, err := q.Exec(ctx, `INSERT INTO templates (tenant_id, policy_id, channel, subject, greeting, body, footer, preset, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (tenant_id, policy_id, channel) DO UPDATE SET subject = EXCLUDED.subject, greeting = EXCLUDED.greeting,
  body = EXCLUDED.body, footer = EXCLUDED.footer, preset = EXCLUDED.preset, updated_at = EXCLUDED.updated_at`,
		t.Tenant, t.PolicyID, t.Channel.String(), t.Subject, t.Greeting, t.Body, t.Footer, t.Preset, now)
	if err != nil {
		return message.Template{}, translate(err, "upsert template "+t.PolicyID+"/"+t.Channel.String(), nil)
	}
	return t, nil
}

// Templates returns the tenant's stored template of the policy and channel
// and its default ("*") one, the policy's first; none, one or two.
func Templates(ctx context.Context, q postgres.Querier, tenant, policyID string, c typesv1.Channel) ([]message.Template, error) {
	rows, err := q.Query(ctx, `SELECT policy_id, subject, greeting, body, footer, preset FROM templates
WHERE tenant_id = $1 AND channel = $2 AND policy_id IN ($3, '*') ORDER BY policy_id = '*'`, tenant, c.String(), policyID)
	if err != nil {
		return nil, translate(err, "templates of "+policyID, nil)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (message.Template, error) {
		t := message.Template{Tenant: tenant, Channel: c}
		err := r.Scan(&t.PolicyID, &t.Subject, &t.Greeting, &t.Body, &t.Footer, &t.Preset)
		return t, err
	})
	return out, translate(err, "templates of "+policyID, nil)
}

// SetCustomerVariables replaces a customer's template variables.
func SetCustomerVariables(ctx context.Context, q postgres.Querier, tenant, customerID string, vars map[string]string, now time.Time) error {
	b, err := json.Marshal(vars)
	if err != nil {
		return translate(err, "variables", nil)
	}
	_, err = q.Exec(ctx, `INSERT INTO customer_variables (tenant_id, customer_id, variables, updated_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant_id, customer_id) DO UPDATE SET variables = EXCLUDED.variables, updated_at = EXCLUDED.updated_at`, tenant, customerID, b, now)
	return translate(err, "set variables of "+customerID, nil)
}

// CustomerVariables returns a customer's template variables (none: empty).
func CustomerVariables(ctx context.Context, q postgres.Querier, tenant, customerID string) (map[string]string, error) {
	vars := map[string]string{}
	var b []byte
	err := q.QueryRow(ctx, `SELECT variables FROM customer_variables WHERE tenant_id = $1 AND customer_id = $2`, tenant, customerID).Scan(&b)
	if err = translate(err, "variables of "+customerID, errNone); err == errNone {
		return vars, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &vars); err != nil {
		return nil, translate(err, "variables of "+customerID, nil)
	}
	return vars, nil
}

const messageColumns = `id, tenant_id, task_id, visit_id, channel, recipient, subject, body, idempotency_key, status, tries, provider, provider_message_id, error, created_at, updated_at, appointment_id`

func scanMessage(r pgx.CollectableRow) (message.Message, error) {
	var m message.Message
	var channel string
	err := r.Scan(&m.ID, &m.Tenant, &m.TaskID, &m.VisitID, &channel, &m.To, &m.Subject, &m.Body, &m.IdempotencyKey, &m.Status,
		&m.Tries, &m.Provider, &m.ProviderMessageID, &m.Error, &m.CreatedAt, &m.UpdatedAt, &m.AppointmentID)
	m.Channel = typesv1.Channel(typesv1.Channel_value[channel])
	return m, err
}

// CreateMessage stores a new message.
func CreateMessage(ctx context.Context, q postgres.Querier, m message.Message) error {
	_, err := q.Exec(ctx, `INSERT INTO messages (`+messageColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
		m.ID, m.Tenant, m.TaskID, m.VisitID, m.Channel.String(), m.To, m.Subject, m.Body, m.IdempotencyKey, m.Status, m.Tries,
		m.Provider, m.ProviderMessageID, m.Error, m.CreatedAt, m.UpdatedAt, m.AppointmentID)
	return translate(err, "create message of task "+m.TaskID, nil)
}

// SaveMessage writes back a message's state.
func SaveMessage(ctx context.Context, q postgres.Querier, m message.Message) error {
	_, err := q.Exec(ctx, `UPDATE messages SET status = $2, tries = $3, provider = $4, provider_message_id = $5, error = $6, updated_at = $7 WHERE id = $1`,
		m.ID, m.Status, m.Tries, m.Provider, m.ProviderMessageID, m.Error, m.UpdatedAt)
	return translate(err, "save message "+m.ID, nil)
}

// MessageOfTask locks the message of a task's visit (not an appointment's
// reminder) within tx; false when none.
func MessageOfTask(ctx context.Context, tx pgx.Tx, taskID string) (message.Message, bool, error) {
	rows, err := tx.Query(ctx, `SELECT `+messageColumns+` FROM messages WHERE task_id = $1 AND appointment_id = '' FOR UPDATE`, taskID)
	if err != nil {
		return message.Message{}, false, translate(err, "message of task "+taskID, nil)
	}
	m, err := pgx.CollectExactlyOneRow(rows, scanMessage)
	if err = translate(err, "message of task "+taskID, errNone); err == errNone {
		return message.Message{}, false, nil
	}
	return m, err == nil, err
}

// MessageByProvider locks the message a provider knows by id within tx, or
// returns ErrMessageNotFound.
func MessageByProvider(ctx context.Context, tx pgx.Tx, provider, id string) (message.Message, error) {
	rows, err := tx.Query(ctx, `SELECT `+messageColumns+` FROM messages WHERE provider = $1 AND provider_message_id = $2 FOR UPDATE`, provider, id)
	if err != nil {
		return message.Message{}, translate(err, "message "+provider+"/"+id, nil)
	}
	m, err := pgx.CollectExactlyOneRow(rows, scanMessage)
	return m, translate(err, "message "+provider+"/"+id, ErrMessageNotFound)
}

// ListMessages lists a tenant's messages (of one task when taskID is set)
// by id descending (ids are time-ordered), before beforeID when set.
func ListMessages(ctx context.Context, q postgres.Querier, tenant, taskID, beforeID string, limit int) ([]message.Message, error) {
	rows, err := q.Query(ctx, `SELECT `+messageColumns+` FROM messages
WHERE tenant_id = $1 AND ($2 = '' OR task_id = $2) AND ($3 = '' OR id < $3) ORDER BY id DESC LIMIT $4`, tenant, taskID, beforeID, limit)
	if err != nil {
		return nil, translate(err, "list messages", nil)
	}
	out, err := pgx.CollectRows(rows, scanMessage)
	return out, translate(err, "list messages", nil)
}

// ClaimOutgoing locks the most urgent automatic task due for a send at now
// within tx: open and available, or sending with an expired lease (a sender
// that died mid-send); others' locked rows are skipped. False when none.
func ClaimOutgoing(ctx context.Context, tx pgx.Tx, now time.Time) (task.Task, bool, error) {
	rows, err := tx.Query(ctx, `SELECT `+taskColumns+` FROM tasks t
WHERE automatic AND status IN ('open', 'sending') AND available_at <= $1 AND (status = 'open' OR lease_expires_at <= $1)
ORDER BY available_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`, now)
	if err != nil {
		return task.Task{}, false, translate(err, "claim outgoing", nil)
	}
	ts, err := pgx.CollectRows(rows, scanTask)
	if err != nil {
		return task.Task{}, false, translate(err, "claim outgoing", nil)
	}
	if len(ts) == 0 {
		return task.Task{}, false, nil
	}
	return ts[0], true, nil
}

// SLADue locks, within tx, up to limit active tasks whose deadline is
// before `before` and whose recorded SLA stage is behind the one at now
// (none yet, or near while the deadline passed); others' locked rows are
// skipped.
func SLADue(ctx context.Context, tx pgx.Tx, now, before time.Time, limit int) ([]task.Task, error) {
	rows, err := tx.Query(ctx, `SELECT `+taskColumns+` FROM tasks t
WHERE status IN ('open', 'claimed', 'sending') AND sla_stage <> 'past' AND deadline <= $2
  AND (sla_stage = '' OR deadline <= $1)
ORDER BY deadline LIMIT $3 FOR UPDATE SKIP LOCKED`, now, before, limit)
	if err != nil {
		return nil, translate(err, "sla", nil)
	}
	tasks, err := pgx.CollectRows(rows, scanTask)
	return tasks, translate(err, "sla", nil)
}

// SetSLAStage records the SLA stage a task reached.
func SetSLAStage(ctx context.Context, q postgres.Querier, taskID, stage string) error {
	_, err := q.Exec(ctx, `UPDATE tasks SET sla_stage = $2 WHERE id = $1`, taskID, stage)
	return translate(err, "sla stage of "+taskID, nil)
}
