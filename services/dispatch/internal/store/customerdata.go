package store

// customerTasks selects a customer's tasks (tasks.customer_id, generated
// from the task's snapshot).
const customerTasks = `SELECT id FROM tasks WHERE tenant_id = $1 AND customer_id = $2`

// CustomerRows are the rows linked to a customer other than by a
// customer_id column, for the person's export (customerdata.Source.Related):
// its tasks' details, attempts, messages and cancellations, and its tasks
// (by their customer_id, named here to list them in the order they were
// made, each with the customer snapshot it shows: taskColumns; the
// appointments are read by their customer_id). $1 is the tenant, $2 the
// customer.
func CustomerRows() map[string]string {
	return map[string]string{
		"tasks": `SELECT r.* FROM tasks t, jsonb_populate_record(t, jsonb_build_object('customer', ` + taskCustomer + `)) r
WHERE t.tenant_id = $1 AND t.customer_id = $2 ORDER BY t.created_at, t.id`,
		"attempts": `SELECT * FROM attempts WHERE tenant_id = $1 AND task_id IN (` + customerTasks + `) ORDER BY attempted_at, id`,
		"messages": `SELECT * FROM messages WHERE tenant_id = $1 AND task_id IN (` + customerTasks + `) ORDER BY created_at, id`,
		"cancelled_visits": `SELECT * FROM cancelled_visits WHERE tenant_id = $1 AND visit_id IN
  (SELECT visit_id FROM tasks WHERE tenant_id = $1 AND customer_id = $2) ORDER BY cancelled_at`,
		"local_sent_messages": `SELECT l.* FROM local_sent_messages l JOIN messages m ON m.idempotency_key = l.idempotency_key
WHERE m.tenant_id = $1 AND m.task_id IN (` + customerTasks + `) ORDER BY l.sent_at`,
		"task_details": `SELECT * FROM task_details WHERE tenant_id = $1 AND task_id IN (` + customerTasks + `) ORDER BY task_id`,
	}
}
