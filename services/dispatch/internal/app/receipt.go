package app

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/sender"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// RecordReceipt records a provider's delivery report: the message and its
// task become delivered or failed, once, and VisitAttempted tells it. A
// repeated report changes nothing; an unknown message is
// store.ErrMessageNotFound.
func (a *App) RecordReceipt(ctx context.Context, provider string, r sender.Receipt) (message.Message, error) {
	var out message.Message
	now := a.Now()
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		m, err := store.MessageByProvider(ctx, tx, provider, r.ProviderMessageID)
		if err != nil {
			return err
		}
		out = m
		if m.Status == message.StatusDelivered || m.Status == message.StatusFailed {
			return nil
		}
		if m.AppointmentID != "" {
			// An appointment's reminder: its task is the on-site visit, whose
			// state the receipt does not change.
			out, err = a.reminderReceipt(ctx, tx, m, r, now)
			return err
		}
		_, err = store.UpdateTask(ctx, tx, m.Tenant, m.TaskID, now, func(t *task.Task) error {
			m.Receipt(r.Delivered, r.Error, now)
			if err := store.SaveMessage(ctx, tx, m); err != nil {
				return err
			}
			out = m
			if err := messageSent(ctx, tx, m, t.CustomerID(), t.OrgUnit, m.Status, now); err != nil {
				return err
			}
			t.Delivered(r.Delivered)
			d := typesv1.Disposition_DISPOSITION_DELIVERED
			if !r.Delivered {
				d = typesv1.Disposition_DISPOSITION_FAILED
			}
			return attempted(ctx, tx, *t, "", d, m.Tries, now, time.Time{})
		})
		return err
	})
	if err != nil {
		return message.Message{}, err
	}
	return out, nil
}
