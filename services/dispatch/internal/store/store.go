// Package store keeps dispatch's org units, agents, tasks, attempts,
// customer versions and messages in Postgres: load and save, the queries
// of the API, the claim (FOR UPDATE SKIP LOCKED) and update-by-closure for
// use cases that read, decide and write. Every function takes the
// transaction or pool to run on, so it works inside any use case's
// transaction. Driver errors become the store's sentinels in translate.
package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/dispatch/internal/task"
	"github.com/huifang/huifang/services/dispatch/internal/wire"
)

// CreateTask stores a new open task. It reports false, and changes nothing,
// when the tenant already has a task for the visit (one task per visit:
// the table's unique key).
func CreateTask(ctx context.Context, q postgres.Querier, t task.Task) (bool, error) {
	customer, err := customerJSON(t.Customer)
	if err != nil {
		return false, err
	}
	calendar, err := calendarJSON(t.Calendar)
	if err != nil {
		return false, err
	}
	available := t.AvailableAt
	if available.IsZero() {
		available = t.DueAt
	}
	tag, err := q.Exec(ctx, `INSERT INTO tasks (id, tenant_id, visit_id, customer, channel, group_name, org_unit, service_type, due_at, deadline, status, created_at,
  required_role, required_rank, policy_id, product_category, severity, tier_rank, primary_owner, backup_owner, language, automatic, available_at, updated_at,
  contact_calendar)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $12, $24)
ON CONFLICT (tenant_id, visit_id) DO NOTHING`,
		t.ID, t.Tenant, t.VisitID, customer, t.Channel.String(), t.Group, t.OrgUnit, t.ServiceType,
		t.DueAt, nullTime(t.Deadline), task.StatusOpen, t.CreatedAt,
		t.RequiredRole, t.RequiredRank(), t.PolicyID, t.ProductCategory, int32(t.Severity), t.TierRank,
		t.PrimaryOwner, t.BackupOwner, t.Language, t.Automatic, available, calendar)
	if err != nil {
		return false, translate(err, "insert task for visit "+t.VisitID, nil)
	}
	return tag.RowsAffected() == 1, nil
}

// RememberCancelled records that the visit was cancelled (VisitCancelled),
// once.
func RememberCancelled(ctx context.Context, q postgres.Querier, tenant, visitID, reason string, at time.Time) error {
	_, err := q.Exec(ctx, `INSERT INTO cancelled_visits (tenant_id, visit_id, reason, cancelled_at) VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING`, tenant, visitID, reason, at)
	return translate(err, "cancel visit "+visitID, nil)
}

// UpdateTask locks the task (SELECT … FOR UPDATE) within tx, lets fn change
// it, and saves it at `at`; fn's error leaves it unsaved. It returns the
// task as saved, or ErrTaskNotFound.
func UpdateTask(ctx context.Context, tx pgx.Tx, tenant, id string, at time.Time, fn func(*task.Task) error) (task.Task, error) {
	return update(ctx, tx, `tenant_id = $1 AND id = $2`, tenant, id, at, fn)
}

// UpdateTaskOfVisit is UpdateTask for the task of a visit.
func UpdateTaskOfVisit(ctx context.Context, tx pgx.Tx, tenant, visitID string, at time.Time, fn func(*task.Task) error) (task.Task, error) {
	return update(ctx, tx, `tenant_id = $1 AND visit_id = $2`, tenant, visitID, at, fn)
}

func update(ctx context.Context, tx pgx.Tx, where, tenant, key string, at time.Time, fn func(*task.Task) error) (task.Task, error) {
	rows, err := tx.Query(ctx, `SELECT `+taskColumns+` FROM tasks t WHERE `+where+` FOR UPDATE`, tenant, key)
	if err != nil {
		return task.Task{}, translate(err, "lock task "+key, nil)
	}
	t, err := pgx.CollectExactlyOneRow(rows, scanTask)
	if err != nil {
		return task.Task{}, translate(err, "lock task "+key, ErrTaskNotFound)
	}
	if err := fn(&t); err != nil {
		return task.Task{}, err
	}
	return t, SaveTask(ctx, tx, t, at)
}

// UpdateActiveTasksOfCustomer locks the customer's active tasks (open,
// claimed, sending) within tx, oldest first, lets fn change each, and saves
// the ones fn reports changed at `at`. It returns how many it saved.
func UpdateActiveTasksOfCustomer(ctx context.Context, tx pgx.Tx, tenant, customerID string, at time.Time, fn func(*task.Task) (bool, error)) (int, error) {
	if customerID == "" {
		return 0, nil
	}
	rows, err := tx.Query(ctx, `SELECT `+taskColumns+` FROM tasks t
WHERE tenant_id = $1 AND customer_id = $2 AND status IN ('open', 'claimed', 'sending') ORDER BY created_at, id FOR UPDATE`, tenant, customerID)
	if err != nil {
		return 0, translate(err, "tasks of customer "+customerID, nil)
	}
	tasks, err := pgx.CollectRows(rows, scanTask)
	if err != nil {
		return 0, translate(err, "tasks of customer "+customerID, nil)
	}
	var save []task.Task
	for _, t := range tasks {
		changed, err := fn(&t)
		if err != nil {
			return 0, err
		}
		if changed {
			save = append(save, t)
		}
	}
	if err := SaveTasks(ctx, tx, save, at); err != nil {
		return 0, err
	}
	return len(save), nil
}

// SaveTasks is SaveTask for many tasks, in one statement.
func SaveTasks(ctx context.Context, q postgres.Querier, ts []task.Task, at time.Time) error {
	switch len(ts) {
	case 0:
		return nil
	case 1:
		return SaveTask(ctx, q, ts[0], at)
	}
	n := len(ts)
	ids, statuses, agents, disps := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	primaries, backups, langs, claims := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	customers, leases, avail := make([]*string, n), make([]*time.Time, n), make([]time.Time, n)
	attempts, ranks, tokens, versions := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	for i, t := range ts {
		if t.LastDisposition != typesv1.Disposition_DISPOSITION_UNSPECIFIED {
			disps[i] = t.LastDisposition.String()
		}
		c, err := customerJSON(t.Customer)
		if err != nil {
			return err
		}
		if c != nil {
			s := string(c)
			customers[i] = &s
		}
		ids[i], statuses[i], agents[i], leases[i], avail[i] = t.ID, t.Status, t.AgentID, nullTime(t.LeaseExpiresAt), t.AvailableAt
		attempts[i], ranks[i], primaries[i], backups[i], langs[i] = int64(t.Attempts), int64(t.TierRank), t.PrimaryOwner, t.BackupOwner, t.Language
		tokens[i], claims[i], versions[i] = t.LeaseToken, t.ClaimRequestID, t.CustomerVersion
	}
	_, err := q.Exec(ctx, `UPDATE tasks t SET status = u.status, agent_id = u.agent_id, lease_expires_at = u.lease_expires_at,
  available_at = u.available_at, attempts = u.attempts, last_disposition = u.last_disposition, updated_at = $15, customer = u.customer::jsonb,
  tier_rank = u.tier_rank, primary_owner = u.primary_owner, backup_owner = u.backup_owner, language = u.language, lease_token = u.lease_token,
  claim_request = u.claim_request, customer_version = u.customer_version
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::int[], $7::text[], $8::text[], $9::int[], $10::text[],
  $11::text[], $12::text[], $13::bigint[], $14::text[], $16::bigint[])
  AS u(id, status, agent_id, lease_expires_at, available_at, attempts, last_disposition, customer, tier_rank, primary_owner, backup_owner, language,
  lease_token, claim_request, customer_version)
WHERE t.id = u.id`,
		ids, statuses, agents, leases, avail, attempts, disps, customers, ranks, primaries, backups, langs, tokens, claims, at, versions)
	return translate(err, fmt.Sprintf("save %d tasks", n), nil)
}

// Unsaved reports whether SaveTask would write nothing new of after over
// before (the same task as loaded): the fields it writes are equal, the
// customer snapshot by its wire form. An update that changes none of them
// (a CustomerUpdated whose snapshot the task already carries) is not saved.
func Unsaved(before, after task.Task) bool {
	return before.Status == after.Status && before.AgentID == after.AgentID && before.LeaseExpiresAt.Equal(after.LeaseExpiresAt) &&
		before.AvailableAt.Equal(after.AvailableAt) && before.Attempts == after.Attempts && before.LastDisposition == after.LastDisposition &&
		before.TierRank == after.TierRank && before.PrimaryOwner == after.PrimaryOwner && before.BackupOwner == after.BackupOwner &&
		before.Language == after.Language && before.LeaseToken == after.LeaseToken && before.ClaimRequestID == after.ClaimRequestID &&
		proto.Equal(wire.CustomerProto(before.Customer), wire.CustomerProto(after.Customer))
}

// SaveTask writes back every field of t that changes after its creation:
// the work state (status, agent, lease, its fencing token and the claim's
// request id, availability, attempts, last disposition) and the customer snapshot with what routing
// derives from it (tier rank, owners, language). Callers hold the row's
// lock (UpdateTask, ClaimOutgoing), so the token they checked is the row's.
func SaveTask(ctx context.Context, q postgres.Querier, t task.Task, at time.Time) error {
	disp := ""
	if t.LastDisposition != typesv1.Disposition_DISPOSITION_UNSPECIFIED {
		disp = t.LastDisposition.String()
	}
	customer, err := customerJSON(t.Customer)
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, `UPDATE tasks SET status = $2, agent_id = $3, lease_expires_at = $4, available_at = $5,
  attempts = $6, last_disposition = $7, updated_at = $8, customer = $9, tier_rank = $10, primary_owner = $11, backup_owner = $12, language = $13,
  lease_token = $14, claim_request = $15, customer_version = $16
WHERE id = $1`,
		t.ID, t.Status, t.AgentID, nullTime(t.LeaseExpiresAt), t.AvailableAt, t.Attempts, disp, at,
		customer, t.TierRank, t.PrimaryOwner, t.BackupOwner, t.Language, t.LeaseToken, t.ClaimRequestID, t.CustomerVersion)
	return translate(err, "save task "+t.ID, nil)
}

// Task returns one task, or ErrTaskNotFound.
func Task(ctx context.Context, q postgres.Querier, tenant, id string) (task.Task, error) {
	rows, err := q.Query(ctx, `SELECT `+taskColumns+` FROM tasks t WHERE tenant_id = $1 AND id = $2`, tenant, id)
	if err != nil {
		return task.Task{}, translate(err, "task "+id, nil)
	}
	t, err := pgx.CollectExactlyOneRow(rows, scanTask)
	return t, translate(err, "task "+id, ErrTaskNotFound)
}

// Attempt is one attempt to make a visit.
type Attempt struct {
	ID            string
	Tenant        string
	TaskID        string
	VisitID       string
	AgentID       string
	Number        int
	Disposition   typesv1.Disposition
	Note          string
	At            time.Time
	NextAttemptAt time.Time
}

// AddAttempt appends an attempt.
func AddAttempt(ctx context.Context, q postgres.Querier, a Attempt) error {
	_, err := q.Exec(ctx, `INSERT INTO attempts (id, tenant_id, task_id, visit_id, agent_id, attempt, disposition, note, attempted_at, next_attempt_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, a.ID, a.Tenant, a.TaskID, a.VisitID, a.AgentID, a.Number,
		a.Disposition.String(), a.Note, a.At, nullTime(a.NextAttemptAt))
	return translate(err, fmt.Sprintf("add attempt %d of task %s", a.Number, a.TaskID), nil)
}

// Attempts lists the attempts of a task in order.
func Attempts(ctx context.Context, q postgres.Querier, taskID string) ([]Attempt, error) {
	return AttemptsAfter(ctx, q, taskID, 0, 0)
}

// taskColumns are the columns scanTask reads, of the tasks row named t.
// The customer snapshot of an active task (open, claimed, sending) is the
// newest version of its customer dispatch keeps (customer_versions), when
// it keeps one: a CustomerUpdated that changes nothing routing reads keeps
// the version alone and leaves the tasks as they are (app.UpdateCustomerTx).
// A task that leaves the active states is saved with the snapshot it was
// read with, so a finished task keeps the one of its last active moment,
// its own column. A scalar subquery rather than a join: the queries that
// lock their tasks (FOR UPDATE) lock no version with them.
const taskColumns = `t.id, t.tenant_id, t.visit_id, ` + taskCustomer + ` AS customer, t.channel, t.group_name, t.org_unit, t.service_type, t.due_at,
  t.deadline, t.status, t.agent_id, t.lease_expires_at, t.created_at, t.required_role, t.policy_id, t.product_category, t.severity, t.tier_rank,
  t.primary_owner, t.backup_owner, t.language, t.automatic, t.available_at, t.attempts, t.last_disposition, t.contact_calendar, t.lease_token,
  t.claim_request, ` + taskCustomerVersion + ` AS customer_version`

// taskCustomer is the customer snapshot task t shows (see taskColumns):
// of an active task, the kept version when it is newer than the one the
// row holds (tasks.customer_version, migration 013). A statement that
// waited for the lock of a task a CustomerUpdated rewrote reads the new
// row with the versions as they were when it began: the row's own version
// is then the newer, and the row's snapshot is shown.
const taskCustomer = `CASE WHEN t.status IN ('open', 'claimed', 'sending')
  THEN coalesce((SELECT v.customer FROM customer_versions v WHERE v.tenant_id = t.tenant_id AND v.customer_id = t.customer_id
    AND v.version > t.customer_version), t.customer)
  ELSE t.customer END`

// taskCustomerVersion is the version of the snapshot taskCustomer shows.
const taskCustomerVersion = `CASE WHEN t.status IN ('open', 'claimed', 'sending')
  THEN greatest(t.customer_version, (SELECT v.version FROM customer_versions v WHERE v.tenant_id = t.tenant_id AND v.customer_id = t.customer_id))
  ELSE t.customer_version END`

func scanTask(r pgx.CollectableRow) (task.Task, error) { return scanTaskPlus(r) }

// scanTaskPlus scans taskColumns followed by extra columns into extra.
func scanTaskPlus(r pgx.Row, extra ...any) (task.Task, error) {
	var (
		t        task.Task
		customer []byte
		calendar []byte
		channel  string
		deadline *time.Time
		lease    *time.Time
		severity int32
		disp     string
	)
	if err := r.Scan(append([]any{&t.ID, &t.Tenant, &t.VisitID, &customer, &channel, &t.Group, &t.OrgUnit, &t.ServiceType,
		&t.DueAt, &deadline, &t.Status, &t.AgentID, &lease, &t.CreatedAt,
		&t.RequiredRole, &t.PolicyID, &t.ProductCategory, &severity, &t.TierRank, &t.PrimaryOwner, &t.BackupOwner,
		&t.Language, &t.Automatic, &t.AvailableAt, &t.Attempts, &disp, &calendar, &t.LeaseToken, &t.ClaimRequestID, &t.CustomerVersion}, extra...)...); err != nil {
		return t, err
	}
	var err error
	if t.Customer, err = customerOf(customer); err != nil {
		return t, fmt.Errorf("customer of task %s: %w", t.ID, err)
	}
	if calendar != nil {
		if err := json.Unmarshal(calendar, &t.Calendar); err != nil {
			return t, fmt.Errorf("contact calendar of task %s: %w", t.ID, err)
		}
	}
	// The columns hold the enums' full names (CHANNEL_PHONE).
	t.Channel = typesv1.Channel(typesv1.Channel_value[channel])
	t.Severity = typesv1.Severity(severity)
	t.LastDisposition = typesv1.Disposition(typesv1.Disposition_value[disp])
	if deadline != nil {
		t.Deadline = *deadline
	}
	if lease != nil {
		t.LeaseExpiresAt = *lease
	}
	return t, nil
}

// customerJSON is the snapshot as the customer columns keep it: the
// types.v1.Customer in protojson; NULL for no customer.
func customerJSON(c task.Customer) ([]byte, error) {
	p := wire.CustomerProto(c)
	if p == nil {
		return nil, nil
	}
	b, err := protojson.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("store: customer: %w", err)
	}
	return b, nil
}

func customerOf(raw []byte) (task.Customer, error) {
	if raw == nil {
		return task.Customer{}, nil
	}
	c := &typesv1.Customer{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, c); err != nil {
		return task.Customer{}, err
	}
	return wire.Customer(c), nil
}

// calendarJSON is the calendar as tasks.contact_calendar keeps it (see
// contact.Calendar's JSON); NULL for the zero calendar (any time).
func calendarJSON(c contact.Calendar) ([]byte, error) {
	if len(c.Windows) == 0 && c.Quiet == nil && c.TimeZone == "" && len(c.Holidays) == 0 && !c.AvoidHolidays {
		return nil, nil
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("store: contact calendar: %w", err)
	}
	return b, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// ForgetCustomerContacts drops the masked contacts of an erased customer
// from every task of it (whatever its status) and from its kept version,
// and the addresses of their messages, the local sender's record included.
func ForgetCustomerContacts(ctx context.Context, tx pgx.Tx, tenant, customerID string) error {
	_, err := tx.Exec(ctx, `
UPDATE local_sent_messages l SET recipient = '' FROM messages m JOIN tasks t ON t.id = m.task_id
WHERE l.idempotency_key = m.idempotency_key AND t.tenant_id = $1 AND t.customer_id = $2;
`, tenant, customerID)
	if err == nil {
		_, err = tx.Exec(ctx, `UPDATE messages m SET recipient = '' FROM tasks t WHERE t.id = m.task_id AND t.tenant_id = $1 AND t.customer_id = $2`, tenant, customerID)
	}
	if err == nil {
		_, err = tx.Exec(ctx, `UPDATE tasks SET customer = customer - 'nameMasked' - 'phoneMasked' - 'emailMasked' - 'name' - 'phone' - 'email'
WHERE tenant_id = $1 AND customer_id = $2 AND customer IS NOT NULL`, tenant, customerID)
	}
	// The active tasks show the kept version's snapshot (taskColumns), and
	// tasks made later start from it.
	if err == nil {
		_, err = tx.Exec(ctx, `UPDATE customer_versions SET customer = customer - 'nameMasked' - 'phoneMasked' - 'emailMasked' - 'name' - 'phone' - 'email'
WHERE tenant_id = $1 AND customer_id = $2 AND customer ?| array['nameMasked', 'phoneMasked', 'emailMasked', 'name', 'phone', 'email']`, tenant, customerID)
	}
	if err != nil {
		return fmt.Errorf("store: forget the contacts of customer %s: %w", customerID, err)
	}
	return nil
}
