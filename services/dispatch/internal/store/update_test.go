package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// TestUpdateTask: the closure sees the locked task; what it changes is
// saved; its error leaves the task as it was; an unknown task is
// ErrTaskNotFound.
func TestUpdateTask(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	x := newTask("v-1", func(x *task.Task) {
		x.Customer = task.Customer{ID: "c-1", NameMasked: "王芳", OwnerIDs: []string{"a-1", "a-2"},
			Preferences: task.Preferences{TimeZone: "Asia/Shanghai", Windows: []contact.Window{{Start: 600, End: 690}},
				OptedOut: []typesv1.Channel{typesv1.Channel_CHANNEL_SMS}}}
		x.Calendar = contact.Calendar{Windows: []contact.Window{{Start: 600, End: 690}, {Start: 930, End: 1020}},
			Quiet: &contact.Window{Start: 21 * 60, End: 8 * 60}, TimeZone: "Asia/Shanghai", Holidays: []string{"2025-10-01"}, AvoidHolidays: true}
	})
	b.add(t, x)

	update := func(id string, fn func(*task.Task) error) (task.Task, error) {
		var out task.Task
		err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
			var err error
			out, err = store.UpdateTask(ctx, tx, "default", id, t0.Add(time.Minute), fn)
			return err
		})
		return out, err
	}
	got, err := update(x.ID, func(t *task.Task) error {
		t.Status, t.AgentID, t.Attempts, t.AvailableAt = task.StatusOpen, "", 1, t0.Add(2*time.Hour)
		t.LastDisposition = typesv1.Disposition_DISPOSITION_NO_ANSWER
		t.Customer.PhoneMasked, t.PrimaryOwner = "13900000000", "a-2"
		return nil
	})
	require.NoError(t, err)
	stored, err := store.Task(ctx, b.pool, "default", x.ID)
	require.NoError(t, err)
	require.Equal(t, got.ID, stored.ID)
	require.True(t, stored.AvailableAt.Equal(t0.Add(2*time.Hour)))
	require.Equal(t, typesv1.Disposition_DISPOSITION_NO_ANSWER, stored.LastDisposition)
	require.Equal(t, 1, stored.Attempts)
	require.Equal(t, "13900000000", stored.Customer.PhoneMasked)
	require.Equal(t, "a-2", stored.PrimaryOwner)
	require.Equal(t, x.Calendar, stored.Calendar, "the contact calendar is kept with the task")
	require.Equal(t, x.Customer.Preferences, stored.Customer.Preferences)

	refused := errors.New("no")
	_, err = update(x.ID, func(t *task.Task) error {
		t.Status = task.StatusDone
		return refused
	})
	require.ErrorIs(t, err, refused)
	stored, err = store.Task(ctx, b.pool, "default", x.ID)
	require.NoError(t, err)
	require.Equal(t, task.StatusOpen, stored.Status, "a refused change is not saved")

	_, err = update("nope", func(*task.Task) error { return nil })
	require.ErrorIs(t, err, store.ErrTaskNotFound)
}

// TestAttemptConflict: the schema's unique key on (task, attempt) comes
// back as ErrConflict.
func TestAttemptConflict(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	x := newTask("v-1")
	b.add(t, x)
	a := store.Attempt{ID: "at-1", Tenant: "default", TaskID: x.ID, VisitID: "v-1", Number: 1, Disposition: typesv1.Disposition_DISPOSITION_BUSY, At: t0}
	require.NoError(t, store.AddAttempt(ctx, b.pool, a))
	a.ID = "at-2"
	require.ErrorIs(t, store.AddAttempt(ctx, b.pool, a), store.ErrConflict)
}

// TestCustomerVersions: the kept version and its snapshot.
func TestCustomerVersions(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	c := task.Customer{ID: "c-1", NameMasked: "王芳", Tier: "key"}
	k := store.CustomerKey{Tenant: "default", ID: "c-1"}
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		kept, err := store.LockCustomerVersions(ctx, tx, []store.CustomerKey{k})
		require.Empty(t, kept)
		if err != nil {
			return err
		}
		return store.SaveCustomerVersion(ctx, tx, "default", c, 3, t0)
	}))
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		kept, err := store.LockCustomerVersions(ctx, tx, []store.CustomerKey{k})
		require.Equal(t, map[store.CustomerKey]store.KeptCustomer{k: {Version: 3, Customer: c}}, kept)
		return err
	}))
	latest, err := store.LatestCustomers(ctx, b.pool, []store.CustomerKey{k, {Tenant: "other", ID: "c-1"}})
	require.NoError(t, err)
	require.Equal(t, map[store.CustomerKey]store.KeptCustomer{k: {Version: 3, Customer: c}}, latest)
}
