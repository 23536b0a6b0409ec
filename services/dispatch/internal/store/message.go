package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// ErrMessageNotFound: no message with that provider id.
var ErrMessageNotFound = errors.New("store: message not found")

// UpsertTemplate stores a normalized template.
func (s *Store) UpsertTemplate(ctx context.Context, t message.Template, now time.Time) (message.Template, error) {
	_, err := s.Pool.Exec(ctx, `INSERT INTO templates (tenant_id, policy_id, channel, subject, greeting, body, footer, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (tenant_id, policy_id, channel) DO UPDATE SET subject = EXCLUDED.subject, greeting = EXCLUDED.greeting,
  body = EXCLUDED.body, footer = EXCLUDED.footer, updated_at = EXCLUDED.updated_at`,
		t.Tenant, t.PolicyID, t.Channel.String(), t.Subject, t.Greeting, t.Body, t.Footer, now)
	if err != nil {
		return message.Template{}, fmt.Errorf("store: upsert template %s/%s: %w", t.PolicyID, t.Channel, err)
	}
	return t, nil
}

// TemplateFor returns the template of the policy and channel, else the
// tenant's default ("*"), else the built-in one.
func TemplateFor(ctx context.Context, tx pgx.Tx, tenant, policyID string, c typesv1.Channel) (message.Template, error) {
	t := message.Template{Tenant: tenant, Channel: c}
	err := tx.QueryRow(ctx, `SELECT policy_id, subject, greeting, body, footer FROM templates
WHERE tenant_id = $1 AND channel = $2 AND policy_id IN ($3, '*') ORDER BY policy_id = '*' LIMIT 1`, tenant, c.String(), policyID).
		Scan(&t.PolicyID, &t.Subject, &t.Greeting, &t.Body, &t.Footer)
	if errors.Is(err, pgx.ErrNoRows) {
		return message.Default(tenant, c), nil
	}
	if err != nil {
		return message.Template{}, fmt.Errorf("store: template of %s: %w", policyID, err)
	}
	return t, nil
}

// SetCustomerVariables replaces a customer's template variables.
func (s *Store) SetCustomerVariables(ctx context.Context, tenant, customerID string, vars map[string]string, now time.Time) error {
	b, err := json.Marshal(vars)
	if err != nil {
		return fmt.Errorf("store: variables: %w", err)
	}
	_, err = s.Pool.Exec(ctx, `INSERT INTO customer_variables (tenant_id, customer_id, variables, updated_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant_id, customer_id) DO UPDATE SET variables = EXCLUDED.variables, updated_at = EXCLUDED.updated_at`, tenant, customerID, b, now)
	if err != nil {
		return fmt.Errorf("store: set variables of %s: %w", customerID, err)
	}
	return nil
}

// CustomerVariables returns a customer's template variables (none: empty).
func CustomerVariables(ctx context.Context, tx pgx.Tx, tenant, customerID string) (map[string]string, error) {
	vars := map[string]string{}
	var b []byte
	err := tx.QueryRow(ctx, `SELECT variables FROM customer_variables WHERE tenant_id = $1 AND customer_id = $2`, tenant, customerID).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return vars, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: variables of %s: %w", customerID, err)
	}
	if err := json.Unmarshal(b, &vars); err != nil {
		return nil, fmt.Errorf("store: variables of %s: %w", customerID, err)
	}
	return vars, nil
}

// Message statuses.
const (
	MessageSending   = "sending"
	MessageSent      = "sent"
	MessageDelivered = "delivered"
	MessageFailed    = "failed"
)

// Message is one automatic message of a task.
type Message struct {
	ID                string
	Tenant            string
	TaskID            string
	VisitID           string
	Channel           typesv1.Channel
	To                string
	Subject           string
	Body              string
	IdempotencyKey    string
	Status            string
	Tries             int
	Provider          string
	ProviderMessageID string
	Error             string
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

const messageColumns = `id, tenant_id, task_id, visit_id, channel, recipient, subject, body, idempotency_key, status, tries, provider, provider_message_id, error, created_at, updated_at`

func scanMessage(r pgx.CollectableRow) (Message, error) {
	var m Message
	var channel string
	err := r.Scan(&m.ID, &m.Tenant, &m.TaskID, &m.VisitID, &channel, &m.To, &m.Subject, &m.Body, &m.IdempotencyKey, &m.Status,
		&m.Tries, &m.Provider, &m.ProviderMessageID, &m.Error, &m.CreatedAt, &m.UpdatedAt)
	m.Channel = typesv1.Channel(typesv1.Channel_value[channel])
	return m, err
}

// CreateMessage stores a new message within tx.
func CreateMessage(ctx context.Context, tx pgx.Tx, m Message) error {
	_, err := tx.Exec(ctx, `INSERT INTO messages (`+messageColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		m.ID, m.Tenant, m.TaskID, m.VisitID, m.Channel.String(), m.To, m.Subject, m.Body, m.IdempotencyKey, m.Status, m.Tries,
		m.Provider, m.ProviderMessageID, m.Error, m.CreatedAt, m.UpdatedAt)
	if err != nil {
		return fmt.Errorf("store: create message of task %s: %w", m.TaskID, err)
	}
	return nil
}

// SaveMessage writes back a message's state within tx.
func SaveMessage(ctx context.Context, tx pgx.Tx, m Message) error {
	_, err := tx.Exec(ctx, `UPDATE messages SET status = $2, tries = $3, provider = $4, provider_message_id = $5, error = $6, updated_at = $7 WHERE id = $1`,
		m.ID, m.Status, m.Tries, m.Provider, m.ProviderMessageID, m.Error, m.UpdatedAt)
	if err != nil {
		return fmt.Errorf("store: save message %s: %w", m.ID, err)
	}
	return nil
}

// MessageOfTask locks the message of a task within tx; false when none.
func MessageOfTask(ctx context.Context, tx pgx.Tx, taskID string) (Message, bool, error) {
	rows, err := tx.Query(ctx, `SELECT `+messageColumns+` FROM messages WHERE task_id = $1 FOR UPDATE`, taskID)
	if err != nil {
		return Message{}, false, fmt.Errorf("store: message of task %s: %w", taskID, err)
	}
	m, err := pgx.CollectExactlyOneRow(rows, scanMessage)
	if errors.Is(err, pgx.ErrNoRows) {
		return Message{}, false, nil
	}
	if err != nil {
		return Message{}, false, fmt.Errorf("store: message of task %s: %w", taskID, err)
	}
	return m, true, nil
}

// MessageByProvider locks the message a provider knows by id, within tx.
func MessageByProvider(ctx context.Context, tx pgx.Tx, provider, id string) (Message, error) {
	rows, err := tx.Query(ctx, `SELECT `+messageColumns+` FROM messages WHERE provider = $1 AND provider_message_id = $2 FOR UPDATE`, provider, id)
	if err != nil {
		return Message{}, fmt.Errorf("store: message %s/%s: %w", provider, id, err)
	}
	m, err := pgx.CollectExactlyOneRow(rows, scanMessage)
	if errors.Is(err, pgx.ErrNoRows) {
		return Message{}, ErrMessageNotFound
	}
	if err != nil {
		return Message{}, fmt.Errorf("store: message %s/%s: %w", provider, id, err)
	}
	return m, nil
}

// ListMessages lists a tenant's messages (of one task when taskID is set)
// by id descending (ids are time-ordered), before beforeID when set.
func (s *Store) ListMessages(ctx context.Context, tenant, taskID, beforeID string, limit int) ([]Message, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+messageColumns+` FROM messages
WHERE tenant_id = $1 AND ($2 = '' OR task_id = $2) AND ($3 = '' OR id < $3) ORDER BY id DESC LIMIT $4`, tenant, taskID, beforeID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list messages: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanMessage)
	if err != nil {
		return nil, fmt.Errorf("store: list messages: %w", err)
	}
	return out, nil
}

// ClaimOutgoing locks the most urgent automatic task due for a send at now:
// open and available, or sending with an expired lease (a sender that died
// mid-send). False when none.
func ClaimOutgoing(ctx context.Context, tx pgx.Tx, now time.Time) (task.Task, bool, error) {
	rows, err := tx.Query(ctx, `SELECT `+taskColumns+` FROM tasks
WHERE automatic AND status IN ('open', 'sending') AND available_at <= $1 AND (status = 'open' OR lease_expires_at <= $1)
ORDER BY available_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`, now)
	if err != nil {
		return task.Task{}, false, fmt.Errorf("store: claim outgoing: %w", err)
	}
	ts, err := pgx.CollectRows(rows, scanTask)
	if err != nil {
		return task.Task{}, false, fmt.Errorf("store: claim outgoing: %w", err)
	}
	if len(ts) == 0 {
		return task.Task{}, false, nil
	}
	return ts[0], true, nil
}

// SLADue locks up to limit active tasks whose deadline is before `before`
// and whose SLA stage is behind what it should be at now.
func SLADue(ctx context.Context, tx pgx.Tx, now, before time.Time, limit int) ([]task.Task, []string, error) {
	rows, err := tx.Query(ctx, `SELECT `+taskColumns+`, sla_stage FROM tasks
WHERE status IN ('open', 'claimed', 'sending') AND sla_stage <> 'past' AND deadline <= $2
  AND (sla_stage = '' OR deadline <= $1)
ORDER BY deadline LIMIT $3 FOR UPDATE SKIP LOCKED`, now, before, limit)
	if err != nil {
		return nil, nil, fmt.Errorf("store: sla: %w", err)
	}
	defer rows.Close()
	var tasks []task.Task
	var stages []string
	for rows.Next() {
		var stage string
		t, err := scanTaskPlus(rows, &stage)
		if err != nil {
			return nil, nil, fmt.Errorf("store: sla: %w", err)
		}
		tasks, stages = append(tasks, t), append(stages, stage)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("store: sla: %w", err)
	}
	return tasks, stages, nil
}

// SetSLAStage records the SLA stage a task reached.
func SetSLAStage(ctx context.Context, tx pgx.Tx, taskID, stage string) error {
	if _, err := tx.Exec(ctx, `UPDATE tasks SET sla_stage = $2 WHERE id = $1`, taskID, stage); err != nil {
		return fmt.Errorf("store: sla stage of %s: %w", taskID, err)
	}
	return nil
}
