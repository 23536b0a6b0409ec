package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/analytics/internal/store"
)

// ErrStreamIncomplete: the stream no longer holds every event the figures
// in use were built from, so a replay would lose history; the rebuild is
// refused and the figures stay as they are.
var ErrStreamIncomplete = errors.New("rebuild refused: the stream no longer holds the whole history, and a replay would drop the figures of what it lost; the current figures stay")

// Rebuild makes the rollups again from the stream, through the consumer's
// gate, without ever emptying the tables in use: it replays the stream from
// its first message into shadow tables while the live ones keep serving
// (and the consumer keeps consuming), and swaps them in in one transaction
// once they have caught up. It returns the stream's last sequence when the
// swap happened; the figures in use then cover it. A stream that no longer
// holds the whole history is refused (ErrStreamIncomplete); any failure
// leaves the figures as they were. Only the replica that consumes rebuilds;
// another answers ErrStandby. The swap's transaction records the rebuild in
// the audit log, by the caller ctx carries (see Rebuilt).
func (a *App) Rebuild(ctx context.Context) (uint64, error) {
	if a.Rebuilder == nil {
		return 0, ErrNoRebuild
	}
	return a.Rebuilder.Rebuild(ctx, audit.By(ctx, service))
}

// Rebuilt is what a swap records in the audit log (rollups.rebuild, tenant
// "*": the rollups of every tenant), in its own transaction: who asked for
// the rebuild (every caller the one rebuild served), whether a migration
// did, and the stream's last sequence the new tables cover.
type Rebuilt struct {
	By        []audit.Actor
	Migration bool
	LastSeq   uint64
}

func (r Rebuilt) entries(live string, at time.Time) []audit.Entry {
	var out []audit.Entry
	add := func(by audit.Actor, d audit.Detail) {
		d["stream_last_sequence"] = r.LastSeq
		out = append(out, audit.Entry{Tenant: audit.AllTenants, Actor: by, Action: "rollups.rebuild",
			Target: audit.Target{Kind: "rollups", ID: live}, Detail: d, At: at})
	}
	if r.Migration {
		add(audit.System(service), audit.Detail{"requested_by": "migration"})
	}
	for _, by := range r.By {
		add(by, audit.Detail{})
	}
	return out
}

// ResetRollups empties every rollup and ledger and forgets which events the
// consumer handled (and refused), in one transaction. Rebuild never does
// this; tests use it to apply events to empty tables.
func (a *App) ResetRollups(ctx context.Context, consumer string) error {
	return pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error { return store.Reset(ctx, tx, consumer) })
}

// RebuildRequested reports whether a migration asked for a rebuild.
func (a *App) RebuildRequested(ctx context.Context) (bool, error) {
	return store.RebuildRequested(ctx, a.DB)
}

// StreamHistory is what the stream holds, as JetStream reports it.
type StreamHistory struct {
	Stream  string
	Created time.Time
	// FirstSeq and LastSeq are the first and last sequences it holds
	// (FirstSeq = LastSeq + 1 when it holds none any more; both 0 when it
	// never held any); FirstTime is when the first was stored.
	FirstSeq, LastSeq uint64
	FirstTime         time.Time
	// Deleted counts messages removed from inside the stream.
	Deleted uint64
}

// RecordStreamOrigin remembers when the stream was created, the first time
// a leader sees it: the stream the figures are built from.
func (a *App) RecordStreamOrigin(ctx context.Context, h StreamHistory) error {
	return store.RecordStreamOrigin(ctx, a.DB, h.Stream, h.Created)
}

// CheckHistory refuses a rebuild from a stream that does not hold the whole
// history (ErrStreamIncomplete, naming the first time it still holds):
//   - its first sequence is above 1: messages were removed from its start
//     (by STREAM_MAX_AGE, a limit or a purge);
//   - messages were removed from inside it (a per-subject limit, a delete);
//   - it is not the stream the figures were built from: it was created
//     again since a leader first recorded it (a re-provisioning after its
//     store was lost), so the events before are not in it.
//
// The swap checks once more, exactly, that every event the figures in use
// applied is in the replay (Shadow.Swap).
func (a *App) CheckHistory(ctx context.Context, h StreamHistory) error {
	holds := "from " + h.FirstTime.UTC().Format(time.RFC3339) + " on only"
	switch {
	case h.FirstSeq > 1 && h.FirstSeq > h.LastSeq:
		return fmt.Errorf("%w: stream %s holds no event any more: all %d were removed (STREAM_MAX_AGE, limits or a purge)", ErrStreamIncomplete, h.Stream, h.LastSeq)
	case h.FirstSeq > 1:
		return fmt.Errorf("%w: stream %s holds events %s: its first message is sequence %d, the %d before it were removed (STREAM_MAX_AGE, limits or a purge)",
			ErrStreamIncomplete, h.Stream, holds, h.FirstSeq, h.FirstSeq-1)
	case h.Deleted > 0:
		return fmt.Errorf("%w: %d messages were removed from inside stream %s (limits or deletes); it holds events %s, with gaps",
			ErrStreamIncomplete, h.Deleted, h.Stream, holds)
	}
	origin, ok, err := store.StreamOrigin(ctx, a.DB, h.Stream)
	if err != nil {
		return err
	}
	if ok && !origin.Equal(h.Created.Truncate(time.Microsecond)) {
		return fmt.Errorf("%w: stream %s was created again at %s (the figures are built from the one created at %s); it holds events %s",
			ErrStreamIncomplete, h.Stream, h.Created.UTC().Format(time.RFC3339), origin.UTC().Format(time.RFC3339), holds)
	}
	return nil
}

// Shadow is a rebuild in progress: shadow copies of the rollup tables (and
// of the consumer's inbox, refusals and outbox) in a schema of their own,
// filled by the same commands as the live tables (Tx points the store at
// them) while the live ones keep serving.
type Shadow struct {
	a            *App
	live, shadow string
	since        time.Time
}

// BeginRebuild makes empty shadow tables (dropping what a failed rebuild
// left), in a transaction fenced by ctx's term.
func (a *App) BeginRebuild(ctx context.Context) (*Shadow, error) {
	live, shadow, err := store.Schemas(ctx, a.DB)
	if err != nil {
		return nil, err
	}
	s := &Shadow{a: a, live: live, shadow: shadow}
	err = pgx.BeginFunc(ctx, a.DB, func(tx pgx.Tx) error {
		if err := a.fence(ctx, tx); err != nil {
			return err
		}
		var err error
		s.since, err = store.CreateShadow(ctx, tx, live, shadow)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Schema names the shadow schema.
func (s *Shadow) Schema() string { return s.shadow }

// Tx runs fn in a transaction on the shadow tables, fenced by ctx's term:
// the store's functions, and so ApplyEventTx, write the shadow copies.
func (s *Shadow) Tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.a.DB, func(tx pgx.Tx) error {
		if err := store.UseShadow(ctx, tx, s.live, s.shadow); err != nil {
			return err
		}
		if err := s.a.fence(ctx, tx); err != nil {
			return err
		}
		return fn(tx)
	})
}

// Analyze gathers the planner's statistics of the shadow tables.
func (s *Shadow) Analyze(ctx context.Context) error {
	return store.AnalyzeShadow(ctx, s.a.DB, s.shadow)
}

// Drop removes the shadow tables, unless ctx's term is over (the new
// leader may be rebuilding into them; its own rebuild drops them first).
func (s *Shadow) Drop(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.a.DB, func(tx pgx.Tx) error {
		if err := s.a.fence(ctx, tx); err != nil {
			return err
		}
		return store.DropShadow(ctx, tx, s.shadow)
	})
}

// swapLockTimeout bounds how long the swap waits for a table readers hold;
// swapAttempts is how often it tries.
const (
	swapLockTimeout = 10 * time.Second
	swapAttempts    = 3
)

// Swap puts the shadow tables in place of the live ones in one transaction
// (store.SwapShadow), after checking that every event the live tables
// applied is in the replay (else ErrStreamIncomplete: the stream lost some)
// and that no migration changed the tables meanwhile; done goes to the
// audit log in the same transaction. The consumer must be
// stopped meanwhile. beforeCommit, when set, runs last before the fence and
// the commit (tests inject failures with it). The fence comes last, so the
// lease row is locked only for the commit. A lock that readers hold too
// long, or a deadlock with one, is tried again.
func (s *Shadow) Swap(ctx context.Context, consumer string, done Rebuilt, beforeCommit func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, s.a.DB, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, fmt.Sprintf("%dms", swapLockTimeout.Milliseconds())); err != nil {
				return fmt.Errorf("app: swap: %w", err)
			}
			n, earliest, err := store.Unreplayed(ctx, tx, s.live, s.shadow, consumer)
			if err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("%w: %d events applied to the figures in use (the earliest handled at %s) are no longer in the stream",
					ErrStreamIncomplete, n, earliest.UTC().Format(time.RFC3339))
			}
			if err := store.SameShape(ctx, tx, s.live, s.shadow); err != nil {
				return err
			}
			if err := store.SwapShadow(ctx, tx, s.live, s.shadow, consumer, s.since); err != nil {
				return err
			}
			if err := audit.Append(ctx, tx, done.entries(s.live, s.a.now())...); err != nil {
				return err
			}
			if beforeCommit != nil {
				if err := beforeCommit(ctx); err != nil {
					return err
				}
			}
			return s.a.fence(ctx, tx)
		})
		code := postgres.Code(err)
		if err == nil || attempt == swapAttempts || (code != "55P03" && code != postgres.CodeDeadlockDetected) || ctx.Err() != nil {
			return err
		}
	}
}
