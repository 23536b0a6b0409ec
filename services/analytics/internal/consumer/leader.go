package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Leader runs a function only while this replica holds a Postgres
// session-level advisory lock, so of several replicas exactly one runs it;
// the others stand by, try again every Retry, and one of them takes over
// when the leader stops or its database session ends (Postgres releases a
// session's advisory locks with it).
type Leader struct {
	Pool *pgxpool.Pool
	// Key names the lock (hashed to a bigint by Postgres).
	Key string
	// Retry is how often a standby tries the lock and the leader checks its session.
	Retry time.Duration
	Log   *slog.Logger

	leading atomic.Bool
	terms   atomic.Int64
}

// Leading reports whether this replica runs the function now.
func (l *Leader) Leading() bool { return l.leading.Load() }

// Terms returns how often this replica took the lead.
func (l *Leader) Terms() int64 { return l.terms.Load() }

// Run leads whenever it can until ctx ends. An error of fn while it held
// the lock ends Run; fn's context ends when the lock's session is lost.
func (l *Leader) Run(ctx context.Context, fn func(context.Context) error) error {
	for {
		conn, err := l.acquire(ctx)
		if err != nil && ctx.Err() == nil {
			l.Log.WarnContext(ctx, "leader lock unavailable", "lock", l.Key, "err", err)
		}
		if conn != nil {
			if err := l.lead(ctx, conn, fn); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(l.Retry):
		}
	}
}

// acquire returns a connection holding the lock, or nil when another session holds it.
func (l *Leader) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	conn, err := l.Pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("consumer: leader connection: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, l.Key).Scan(&ok); err != nil {
		conn.Release()
		return nil, fmt.Errorf("consumer: try leader lock: %w", err)
	}
	if !ok {
		conn.Release()
		return nil, nil
	}
	return conn, nil
}

// lead runs fn while conn holds the lock, watching the session, and then
// gives the lock back (or drops the session, which gives it back too).
func (l *Leader) lead(ctx context.Context, conn *pgxpool.Conn, fn func(context.Context) error) error {
	leadCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var lost atomic.Bool
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(l.Retry)
		defer tick.Stop()
		for {
			select {
			case <-leadCtx.Done():
				return
			case <-tick.C:
			}
			if err := conn.Ping(leadCtx); err != nil && leadCtx.Err() == nil {
				l.Log.WarnContext(ctx, "leader lock session lost: standing down", "lock", l.Key, "err", err)
				lost.Store(true)
				cancel()
				return
			}
		}
	}()
	l.Log.InfoContext(ctx, "leading", "lock", l.Key)
	l.terms.Add(1)
	l.leading.Store(true)
	err := fn(leadCtx)
	l.leading.Store(false)
	cancel()
	<-watched

	uctx, ucancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer ucancel()
	if _, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, l.Key); uerr != nil {
		_ = conn.Conn().Close(uctx)
	}
	conn.Release()
	l.Log.InfoContext(ctx, "standing down", "lock", l.Key)
	if ctx.Err() != nil || lost.Load() {
		return nil
	}
	if err != nil {
		return fmt.Errorf("consumer: while leading: %w", err)
	}
	return nil
}
