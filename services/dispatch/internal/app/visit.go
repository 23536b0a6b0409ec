package app

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// CreateTask makes the open task of a visit that fell due (VisitDue); see
// CreateTaskTx. It reports whether it made one.
func (a *App) CreateTask(ctx context.Context, d task.Due) (bool, error) {
	var created bool
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		created, err = a.CreateTaskTx(ctx, tx, d)
		return err
	})
	return created, err
}

// CreateTaskTx makes the open task of a due visit within tx. A newer
// snapshot of the customer from CustomerUpdated wins over the one the
// scheduler took when it planned the visit. A visit that already has a
// task, or was cancelled before it fell due, makes none (false); a visit
// that breaks a rule (no visit id, an unknown channel or severity) is
// refused with an *invalid.Error.
func (a *App) CreateTaskTx(ctx context.Context, tx pgx.Tx, d task.Due) (bool, error) {
	due, err := a.checkDue(d)
	if err != nil {
		return false, err
	}
	made, err := a.createTasks(ctx, tx, []dueTask{due})
	return made == 1, err
}

// GatherTaskTx is CreateTaskTx for a consumer's batch: a visit that breaks
// a rule is refused at once, with an *invalid.Error; the task of a visit
// that keeps them is made just before tx commits, together with those of
// the batch's other due visits (inbox.Gather), in two statements however
// many: one reads the customers' newer snapshots, one stores the tasks and
// their details, leaving out the visits that were cancelled or already
// have a task. Outside a consumer's handler the task is made at once.
func (a *App) GatherTaskTx(ctx context.Context, tx pgx.Tx, d task.Due) error {
	due, err := a.checkDue(d)
	if err != nil {
		return err
	}
	return inbox.Gather(ctx, tx, "dispatch.tasks", due, func(ctx context.Context, tx pgx.Tx, ds []dueTask) error {
		_, err := a.createTasks(ctx, tx, ds)
		return err
	})
}

// dueTask is a due visit that keeps the rules, with the id and the time
// of its task.
type dueTask struct {
	d   task.Due
	id  string
	now time.Time
}

// checkDue checks d's rules (task.New) and gives its task an id and a time.
func (a *App) checkDue(d task.Due) (dueTask, error) {
	due := dueTask{d: d, id: outbox.NewEventID(), now: a.Now()}
	_, err := task.New(d, due.id, due.now, a.Rules)
	return due, err
}

// createTasks makes the open tasks of due visits within tx, the customers'
// newer snapshots winning, and returns how many it made. It wakes waiting
// claims when it made any (early: a claim that misses the uncommitted rows
// polls again).
func (a *App) createTasks(ctx context.Context, tx pgx.Tx, ds []dueTask) (int, error) {
	var keys []store.CustomerKey
	seen := map[store.CustomerKey]bool{}
	for _, due := range ds {
		k := store.CustomerKey{Tenant: due.d.Tenant, ID: strings.TrimSpace(due.d.Customer.ID)}
		if k.ID != "" && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	// An update of these customers committed meanwhile does not see the
	// tasks made here: the next update of the customer finds what of their
	// routing is not its snapshot's and reroutes them (app.routedApart).
	latest, err := store.LatestCustomers(ctx, tx, keys)
	if err != nil {
		return 0, err
	}
	ts := make([]store.NewTask, len(ds))
	for i, due := range ds {
		d := due.d
		kept, ok := latest[store.CustomerKey{Tenant: d.Tenant, ID: strings.TrimSpace(d.Customer.ID)}]
		if ok {
			d.Customer = kept.Customer
		}
		t, err := task.New(d, due.id, due.now, a.Rules)
		if err != nil {
			return 0, err
		}
		t.CustomerVersion = kept.Version
		ts[i] = store.NewTask{Task: t, Details: store.TaskDetails{ServiceID: d.ServiceID, CompletedAt: d.CompletedAt,
			ComplaintID: d.ComplaintID, Late: d.Late}}
	}
	made, err := store.CreateTasks(ctx, tx, ts)
	if len(made) > 0 {
		a.wake()
	}
	return len(made), err
}

// CancelVisit withdraws the task of a cancelled visit (VisitCancelled); see
// CancelVisitTx.
func (a *App) CancelVisit(ctx context.Context, tenant, visitID, reason string) error {
	return a.inTx(ctx, func(tx pgx.Tx) error { return a.CancelVisitTx(ctx, tx, tenant, visitID, reason) })
}

// CancelVisitTx withdraws the task of a cancelled visit within tx: an
// active task is closed as cancelled (its agent loses it); a visit without
// a task yet is remembered, so that its VisitDue makes none.
func (a *App) CancelVisitTx(ctx context.Context, tx pgx.Tx, tenant, visitID, reason string) error {
	visitID = strings.TrimSpace(visitID)
	if visitID == "" {
		return invalid.New("visit_id", "is required")
	}
	now := a.Now()
	if err := store.RememberCancelled(ctx, tx, tenant, visitID, reason, now); err != nil {
		return err
	}
	_, err := store.UpdateTaskOfVisit(ctx, tx, tenant, visitID, now, func(t *task.Task) error {
		t.Cancel()
		return nil
	})
	if errors.Is(err, store.ErrTaskNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return a.cancelVisitAppointmentTx(ctx, tx, tenant, visitID, now)
}
