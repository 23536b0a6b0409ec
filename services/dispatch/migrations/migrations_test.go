package migrations_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/app"
	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/migrations"
)

// upgrade opens a new database migrated up to the dispatch migration
// named by before (left out), runs seed in it and migrates it to the
// latest: the database as upgraded from that state. It is closed at the
// end of the test.
func upgrade(t *testing.T, before, seed string) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool, err := postgres.Open(ctx, servicetest.Logger(), pgtest.NewDatabase(t), "dispatch", app.Migrations("dispatch", servicetest.MigrationsBefore(t, migrations.FS, before))...)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = pool.Exec(ctx, seed)
	require.NoError(t, err)
	require.NoError(t, postgres.Migrate(ctx, pool, "dispatch", postgres.Migrations{Set: "dispatch", FS: migrations.FS}))
	return pool
}

// Issue #14: a database written before dispatch stopped keeping contacts
// loses every clear name, phone and email at the upgrade: tasks and
// customer versions keep the masked forms and whether there is an address,
// messages the masked address and the {name} placeholder.
func TestUpgradeForgetsClearContacts(t *testing.T) {
	ctx := context.Background()
	pool := upgrade(t, "007", `
INSERT INTO tasks (id, tenant_id, visit_id, customer, channel, service_type, due_at, deadline, available_at, status, created_at, updated_at)
VALUES ('t-1', 'default', 'v-1', '{"id":"c-1","name":"王小明","phone":"+8613800138000","email":"wang@example.com","tier":"key"}', 'CHANNEL_SMS', 'repair', now(), now(), now(), 'sent', now(), now());
INSERT INTO customer_versions (tenant_id, customer_id, version, customer, updated_at)
VALUES ('default', 'c-1', 3, '{"id":"c-1","name":"王小明","phone":"13800138000"}', now());
INSERT INTO messages (id, tenant_id, task_id, visit_id, channel, recipient, subject, body, idempotency_key, status, created_at, updated_at)
VALUES ('m-1', 'default', 't-1', 'v-1', 'CHANNEL_SMS', '+8613800138000', '', '王小明您好！', 'k-1', 'sent', now(), now());
INSERT INTO local_sent_messages (idempotency_key, channel, recipient, subject, body, sent_at)
VALUES ('k-1', 'CHANNEL_SMS', '+8613800138000', '', '王小明您好！', now());`)

	var task, version, recipient, body, localTo, localBody string
	require.NoError(t, pool.QueryRow(ctx, `SELECT customer::text FROM tasks`).Scan(&task))
	require.JSONEq(t, `{"id":"c-1","tier":"key","nameMasked":"王**","phoneMasked":"*******8000","emailMasked":"w***@example.com","hasPhone":true,"hasEmail":true}`, task)
	require.NoError(t, pool.QueryRow(ctx, `SELECT customer::text FROM customer_versions`).Scan(&version))
	require.JSONEq(t, `{"id":"c-1","nameMasked":"王**","phoneMasked":"*******8000","hasPhone":true}`, version)
	require.NoError(t, pool.QueryRow(ctx, `SELECT recipient, body FROM messages`).Scan(&recipient, &body))
	require.Equal(t, "*******8000", recipient)
	require.Equal(t, "{name}您好！", body)
	require.NoError(t, pool.QueryRow(ctx, `SELECT recipient, body FROM local_sent_messages`).Scan(&localTo, &localBody))
	require.Equal(t, "*******8000", localTo)
	require.Equal(t, "{name}您好！", localBody)
	for _, v := range []string{task, version, recipient, body, localTo, localBody} {
		require.False(t, strings.Contains(v, "13800138000") || strings.Contains(v, "王小明") || strings.Contains(v, "wang@"), v)
	}
}

// Issue 16: the SMS templates stored while seed 002's footer was forced on
// every SMS keep it at the upgrade (preset 002); email templates have none.
func TestUpgradeKeepsSeed002Templates(t *testing.T) {
	ctx := context.Background()
	pool := upgrade(t, "008", `INSERT INTO templates (tenant_id, policy_id, channel, subject, greeting, body, footer, updated_at)
VALUES ('default', '*', 'CHANNEL_SMS', '', '{name}您好！', '明天见', '【{project}】预约号：{booking_number}，顾问：{advisor}', now()),
       ('default', '*', 'CHANNEL_EMAIL', '回访', '', '明天见', '', now())`)

	var got []string
	require.NoError(t, pool.QueryRow(ctx, `SELECT array_agg(channel || ' ' || preset ORDER BY channel) FROM templates`).Scan(&got))
	require.Equal(t, []string{"CHANNEL_EMAIL ", "CHANNEL_SMS 002"}, got)
}

// Issue 15: at the upgrade that makes a task's snapshot rewrite a HOT
// update, the tasks kept get their customer_id from the snapshot and, the
// done, unreachable, opted-out and refused ones, their finished_at from
// updated_at (the wallboard's "today" counts them as before); the table
// leaves a fifth of each page free.
func TestUpgradeKeysTasksOnColumns(t *testing.T) {
	ctx := context.Background()
	pool := upgrade(t, "011", `
INSERT INTO tasks (id, tenant_id, visit_id, customer, due_at, available_at, status, created_at, updated_at) VALUES
  ('t-1', 'default', 'v-1', '{"id":"c-1","tier":"key"}', now(), now(), 'open', now(), '2026-12-01 08:00Z'),
  ('t-2', 'default', 'v-2', '{"id":"c-1"}', now(), now(), 'done', now(), '2026-12-02 09:00Z'),
  ('t-3', 'default', 'v-3', '{"id":"c-2"}', now(), now(), 'refused', now(), '2026-12-03 10:00Z'),
  ('t-4', 'default', 'v-4', '{"id":"c-2"}', now(), now(), 'cancelled', now(), '2026-12-04 11:00Z'),
  ('t-5', 'default', 'v-5', NULL, now(), now(), 'unreachable', now(), '2026-12-05 12:00Z')`)

	var got []string
	require.NoError(t, pool.QueryRow(ctx, `SELECT array_agg(concat_ws(' ', id, coalesce(customer_id, '-'),
  coalesce(to_char(finished_at AT TIME ZONE 'UTC', 'MM-DD HH24:MI'), '-')) ORDER BY id) FROM tasks`).Scan(&got))
	require.Equal(t, []string{"t-1 c-1 -", "t-2 c-1 12-02 09:00", "t-3 c-2 12-03 10:00", "t-4 c-2 -", "t-5 - 12-05 12:00"}, got)
	var options []string
	require.NoError(t, pool.QueryRow(ctx, `SELECT reloptions FROM pg_class WHERE oid = 'tasks'::regclass`).Scan(&options))
	require.Equal(t, []string{"fillfactor=80"}, options)
}

// Issue 15: the upgrade that drops task_details' foreign key keeps every
// task and its details; a task's details are still written with it.
func TestUpgradeKeepsTaskDetails(t *testing.T) {
	ctx := context.Background()
	pool := upgrade(t, "012", `
INSERT INTO tasks (id, tenant_id, visit_id, customer, due_at, available_at, status, created_at, updated_at) VALUES
  ('t-1', 'default', 'v-1', '{"id":"c-1"}', now(), now(), 'open', now(), now()),
  ('t-2', 'default', 'v-2', '{"id":"c-2"}', now(), now(), 'done', now(), now());
INSERT INTO task_details (task_id, tenant_id, service_id, service_completed_at, complaint_id, late) VALUES
  ('t-1', 'default', 's-1', '2026-12-01 08:00Z', 'k-1', true)`)

	var got []string
	require.NoError(t, pool.QueryRow(ctx, `SELECT array_agg(concat_ws(' ', t.id, t.status, d.service_id, d.complaint_id, d.late,
  to_char(d.service_completed_at AT TIME ZONE 'UTC', 'MM-DD HH24:MI')) ORDER BY t.id) FROM tasks t LEFT JOIN task_details d ON d.task_id = t.id`).Scan(&got))
	require.Equal(t, []string{"t-1 open s-1 k-1 t 12-01 08:00", "t-2 done"}, got)
	var keys int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_constraint WHERE conrelid = 'task_details'::regclass AND contype = 'f'`).Scan(&keys))
	require.Equal(t, 0, keys, "task_details keeps no foreign key")
}

// Issue 15: tasks made before migration 013 hold a snapshot of no known
// version (0): an active one shows the customer's kept version, a finished
// one its own snapshot, as before the upgrade.
func TestUpgradeVersionsTaskSnapshots(t *testing.T) {
	ctx := context.Background()
	pool := upgrade(t, "013", `
INSERT INTO tasks (id, tenant_id, visit_id, customer, due_at, available_at, status, created_at, updated_at) VALUES
  ('t-1', 'default', 'v-1', '{"id":"c-1","nameMasked":"王芳"}', now(), now(), 'open', now(), now()),
  ('t-2', 'default', 'v-2', '{"id":"c-1","nameMasked":"王芳"}', now(), now(), 'done', now(), now());
INSERT INTO customer_versions (tenant_id, customer_id, version, customer, updated_at) VALUES
  ('default', 'c-1', 5, '{"id":"c-1","nameMasked":"王*"}', now())`)

	open, err := store.Task(ctx, pool, "default", "t-1")
	require.NoError(t, err)
	require.Equal(t, "王*", open.Customer.NameMasked)
	require.EqualValues(t, 5, open.CustomerVersion)
	done, err := store.Task(ctx, pool, "default", "t-2")
	require.NoError(t, err)
	require.Equal(t, "王芳", done.Customer.NameMasked)
	require.Zero(t, done.CustomerVersion)
}
