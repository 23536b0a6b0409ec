package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
)

// Lease is one term of a replica holding a named lease (table leases): its
// holder and the term's token, which grows with every take-over. Expiry is
// judged by the database's clock only.
type Lease struct {
	Name   string
	Holder string
	Token  int64
	// TTL is how long a take or a renewal holds the lease.
	TTL time.Duration
}

// ErrLeaseLost: the lease is no longer held with this term's token (it
// expired, was released or was taken over).
var ErrLeaseLost = errors.New("store: the lease is not held by this term")

// TakeLease takes the lease name for holder when it is free or expired, in
// one statement that increments its token; ok is false when another holder
// has it. A take-over first locks the row FOR UPDATE, the one lock the
// fence's FOR KEY SHARE (HoldLease) conflicts with: it waits until every
// write of the old term has committed or rolled back.
func TakeLease(ctx context.Context, db postgres.DB, name, holder string, ttl time.Duration) (l Lease, ok bool, err error) {
	l = Lease{Name: name, Holder: holder, TTL: ttl}
	// Held and live: nothing to wait for (a standby asks often, and must
	// not queue behind the leader's writes to hear no).
	var free bool
	err = translate(db.QueryRow(ctx, `SELECT holder IS NULL OR expires_at <= now() FROM leases WHERE name = $1`, name).Scan(&free))
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return Lease{}, false, fmt.Errorf("store: take lease %s: %w", name, err)
	case !free:
		return Lease{}, false, nil
	}
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM leases WHERE name = $1 FOR UPDATE`, name); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO leases AS l (name, holder, token, expires_at) VALUES ($1, $2, 1, now() + make_interval(secs => $3))
ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, token = l.token + 1, expires_at = EXCLUDED.expires_at
WHERE l.holder IS NULL OR l.expires_at <= now()
RETURNING token`, name, holder, ttl.Seconds()).Scan(&l.Token)
	})
	err = translate(err)
	if errors.Is(err, ErrNotFound) {
		return Lease{}, false, nil
	}
	if err != nil {
		return Lease{}, false, fmt.Errorf("store: take lease %s: %w", name, err)
	}
	return l, true, nil
}

// RenewLease extends the lease by its TTL from now; ErrLeaseLost when it
// is no longer held with l's token or has expired already. Its UPDATE
// changes no key, so it takes FOR NO KEY UPDATE, which the fences' FOR KEY
// SHARE do not block: the leader's own writes never hold its renewal up.
func RenewLease(ctx context.Context, db postgres.Querier, l Lease) error {
	tag, err := db.Exec(ctx, `UPDATE leases SET expires_at = now() + make_interval(secs => $4)
WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > now()`, l.Name, l.Holder, l.Token, l.TTL.Seconds())
	if err != nil {
		return fmt.Errorf("store: renew lease %s: %w", l.Name, translate(err))
	}
	if tag.RowsAffected() == 0 {
		return ErrLeaseLost
	}
	return nil
}

// ReleaseLease frees the lease when l still holds it, so another replica
// takes it at once.
func ReleaseLease(ctx context.Context, db postgres.Querier, l Lease) error {
	if _, err := db.Exec(ctx, `UPDATE leases SET holder = NULL WHERE name = $1 AND holder = $2 AND token = $3`, l.Name, l.Holder, l.Token); err != nil {
		return fmt.Errorf("store: release lease %s: %w", l.Name, translate(err))
	}
	return nil
}

// HoldLease is the fence of a write: within tx, it checks that l still
// holds the lease (its token, not expired by the database's clock at this
// statement) and keeps the lease row locked FOR KEY SHARE until tx ends:
// no other replica takes the lease over (TakeLease locks FOR UPDATE) before
// tx commits or rolls back, while the holder's renewals, which conflict
// only with FOR UPDATE, go on beside its writes.
// ErrLeaseLost when it is not held. It also bounds how long tx may stay
// idle (idle_in_transaction_session_timeout, the lease's TTL but at least
// a second): a replica that dies inside tx does not keep the lease row
// locked beyond that.
func HoldLease(ctx context.Context, tx postgres.Querier, l Lease) error {
	idle := max(l.TTL, time.Second)
	var s string
	err := translate(tx.QueryRow(ctx, `SELECT set_config('idle_in_transaction_session_timeout', $4, true) FROM leases
WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > statement_timestamp() FOR KEY SHARE`,
		l.Name, l.Holder, l.Token, strconv.FormatInt(idle.Milliseconds(), 10)).Scan(&s))
	if errors.Is(err, ErrNotFound) {
		return ErrLeaseLost
	}
	if err != nil {
		return fmt.Errorf("store: check lease %s: %w", l.Name, err)
	}
	return nil
}

// LeaseHolder returns who holds the lease and its token now (holder ""
// when it is free or expired).
func LeaseHolder(ctx context.Context, db postgres.Querier, name string) (holder string, token int64, err error) {
	var h *string
	err = translate(db.QueryRow(ctx, `SELECT CASE WHEN expires_at > now() THEN holder END, token FROM leases WHERE name = $1`, name).Scan(&h, &token))
	if errors.Is(err, ErrNotFound) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("store: lease %s: %w", name, err)
	}
	if h != nil {
		holder = *h
	}
	return holder, token, nil
}
