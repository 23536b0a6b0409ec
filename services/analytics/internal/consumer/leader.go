package consumer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/huifang/huifang/services/analytics/internal/app"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// Leader runs a function only while this replica holds a lease (a row of
// the leases table), so of several replicas one runs it at a time. A
// standby takes the lease when it is free or expired (the database's clock
// decides), which increments its token; the leader renews it every third of
// its duration and stands down (cancels the function's context) as soon as
// a renewal finds the lease gone, or renewals keep failing until the lease
// may have run out. A dead or cut-off leader is
// replaced within one lease duration, whatever its TCP connections do.
//
// The function's context carries the term (app.WithTerm: the lease with its
// token): every write of the consumer checks it in its own transaction, so
// a leader that lost the lease without noticing yet (paused, partitioned)
// writes nothing, and stands down when a write finds out.
type Leader struct {
	Pool *pgxpool.Pool
	// Key names the lease.
	Key string
	// Holder names this replica in the lease; NewGate makes a unique one
	// (host, process, random).
	Holder string
	// Lease is how long a take or a renewal holds the lease; it is renewed
	// every third of it.
	Lease time.Duration
	// Retry is how often a standby tries to take the lease.
	Retry time.Duration
	Log   *slog.Logger

	leading atomic.Bool
	terms   atomic.Int64
	// paused, when set, holds the renewals until it is closed (tests
	// simulate a paused process with it).
	paused atomic.Pointer[chan struct{}]
}

// DefaultLease is the lease's duration unless LEADER_LEASE says otherwise.
const DefaultLease = 15 * time.Second

// Leading reports whether this replica runs the function now.
func (l *Leader) Leading() bool { return l.leading.Load() }

// Terms returns how often this replica took the lead.
func (l *Leader) Terms() int64 { return l.terms.Load() }

// errStoodDown ends a term's context when the lease is lost.
var errStoodDown = errors.New("consumer: the lease was lost; standing down")

// Run leads whenever it can until ctx ends. An error of fn while it held
// the lease ends Run; fn's context ends when the lease is lost.
func (l *Leader) Run(ctx context.Context, fn func(context.Context) error) error {
	if l.Holder == "" {
		l.Holder = NewHolder()
	}
	if l.Lease <= 0 {
		l.Lease = DefaultLease
	}
	failing := false
	for {
		tctx, cancel := context.WithTimeout(ctx, max(l.Lease/3, time.Second))
		lease, ok, err := store.TakeLease(tctx, l.Pool, l.Key, l.Holder, l.Lease)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				l.Log.WarnContext(ctx, "leader lease unavailable; retrying", "lease", l.Key, "err", err)
			}
			failing = true
		case ok:
			failing = false
			if err := l.lead(ctx, lease, fn); err != nil {
				return err
			}
		default:
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(l.Retry):
		}
	}
}

// lead runs fn with the term in its context while renewing the lease, and
// then gives the lease back when it still holds it.
func (l *Leader) lead(ctx context.Context, lease store.Lease, fn func(context.Context) error) error {
	leadCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var once sync.Once
	lost := func(err error) {
		once.Do(func() {
			l.Log.WarnContext(ctx, "leader lease lost: standing down", "lease", l.Key, "token", lease.Token, "err", err)
			l.leading.Store(false)
			cancel(fmt.Errorf("%w: %w", errStoodDown, err))
		})
	}
	leadCtx = app.WithTerm(leadCtx, app.Term{Lease: lease, Lost: lost})

	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		tick := time.NewTicker(l.Lease / 3)
		defer tick.Stop()
		// held is until when this term may hold the lease: the last
		// renewal's start plus the lease (the database set the expiry
		// later than that). A renewal that fails for the moment (a slow or
		// busy database) is tried again at the next tick while the lease
		// may hold; the database's answer "not yours" ends the term at
		// once. Safety does not rest on this clock: every write checks the
		// term in its own transaction (HoldLease).
		held := time.Now().Add(l.Lease)
		failing := false
		for {
			select {
			case <-leadCtx.Done():
				return
			case <-tick.C:
			}
			if p := l.paused.Load(); p != nil {
				<-*p
			}
			start := time.Now()
			rctx, rcancel := context.WithTimeout(leadCtx, l.Lease/3)
			err := store.RenewLease(rctx, l.Pool, lease)
			rcancel()
			switch {
			case leadCtx.Err() != nil:
				return
			case err == nil:
				held = start.Add(l.Lease)
				if failing {
					l.Log.InfoContext(ctx, "leader lease renewed again", "lease", l.Key, "token", lease.Token)
				}
				failing = false
			case errors.Is(err, store.ErrLeaseLost) || !time.Now().Before(held):
				lost(err)
				return
			default:
				if !failing {
					l.Log.WarnContext(ctx, "leader lease renewal failed; trying again while the lease holds", "lease", l.Key, "token", lease.Token, "err", err)
				}
				failing = true
			}
		}
	}()

	l.Log.InfoContext(ctx, "leading", "lease", l.Key, "holder", l.Holder, "token", lease.Token)
	l.terms.Add(1)
	l.leading.Store(true)
	err := fn(leadCtx)
	l.leading.Store(false)
	stoodDown := errors.Is(context.Cause(leadCtx), errStoodDown)
	cancel(nil)
	<-renewed

	if !stoodDown {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if rerr := store.ReleaseLease(rctx, l.Pool, lease); rerr != nil {
			l.Log.WarnContext(ctx, "could not give the leader lease back; it expires by itself", "lease", l.Key, "err", rerr)
		}
		rcancel()
	}
	l.Log.InfoContext(ctx, "standing down", "lease", l.Key, "token", lease.Token)
	if ctx.Err() != nil || stoodDown {
		return nil
	}
	if err != nil {
		return fmt.Errorf("consumer: while leading: %w", err)
	}
	return nil
}

// NewHolder names a replica uniquely: its host, its process and a random part.
func NewHolder() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}
