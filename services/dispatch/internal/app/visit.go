package app

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"

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
	if id := strings.TrimSpace(d.Customer.ID); id != "" {
		latest, ok, err := store.LatestCustomer(ctx, tx, d.Tenant, id)
		if err != nil {
			return false, err
		}
		if ok {
			d.Customer = latest
		}
	}
	t, err := task.New(d, outbox.NewEventID(), a.Now(), a.Rules)
	if err != nil {
		return false, err
	}
	cancelled, err := store.VisitCancelled(ctx, tx, t.Tenant, t.VisitID)
	if err != nil || cancelled {
		return false, err
	}
	created, err := store.CreateTask(ctx, tx, t)
	if created {
		a.wake() // early: a claim that misses the uncommitted row polls again
		err = store.SaveTaskDetails(ctx, tx, t.Tenant, t.ID, store.TaskDetails{ServiceID: d.ServiceID, CompletedAt: d.CompletedAt,
			ComplaintID: d.ComplaintID, Late: d.Late})
	}
	return created, err
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
