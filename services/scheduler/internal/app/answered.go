package app

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

// Answered is a visit the customer answered (VisitLogged).
type Answered struct {
	Tenant, VisitID string
	// At is when it was logged; zero: now.
	At time.Time
}

// StopAnswered applies an answered visit in a transaction of its own.
func (a *App) StopAnswered(ctx context.Context, in Answered) (n int, err error) {
	err = a.inTx(ctx, func(tx pgx.Tx) error {
		n, err = a.StopAnsweredTx(ctx, tx, in)
		return err
	})
	return n, err
}

// StopAnsweredTx ends the rest of an answered visit's series within tx when
// its policy stops when answered (VisitCancelled); an unknown visit ends
// nothing. It returns how many visits it ended.
func (a *App) StopAnsweredTx(ctx context.Context, tx pgx.Tx, in Answered) (int, error) {
	at := or(in.At, a.Now())
	answered, err := store.GetVisit(ctx, tx, in.Tenant, in.VisitID)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	series, err := store.LockSeries(ctx, tx, in.Tenant, answered.ServiceID, answered.PolicyID)
	if err != nil {
		return 0, err
	}
	_, stopped := splitStopped(series, func(v *visit.Visit) bool { return v.StopAnswered(answered, at) })
	return len(stopped), cancelled(ctx, tx, stopped, at)
}
