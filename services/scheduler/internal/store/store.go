// Package store keeps the scheduler's policies, contact policies, customer
// preferences, completed services and planned visits in Postgres:
// persistence only. Every function takes the postgres.Querier (or the
// pgx.Tx) it runs on, so it works alone on the pool or inside a use case's
// transaction; where a use case reads, decides and writes, an update by
// closure locks the rows (SELECT … FOR UPDATE), lets the closure decide and
// saves. Driver errors become the store's sentinels in one place (translate).
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/huifang/huifang/pkg/postgres"
)

// The store's sentinels.
var (
	// ErrNotFound: no such policy, visit or customer.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a row with the same key exists (a tenant's policy name, a
	// policy version).
	ErrConflict = errors.New("already exists")
	// ErrDamaged: a stored row's JSON cannot be decoded (a visit's
	// decisions or the service it keeps).
	ErrDamaged = errors.New("stored data cannot be read")
)

// translate turns a driver error into the store's sentinels: no rows is
// ErrNotFound, a unique violation ErrConflict (naming the constraint);
// anything else is wrapped with the operation.
func translate(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return ErrNotFound
	case postgres.Code(err) == postgres.CodeUniqueViolation:
		return fmt.Errorf("%w (%s)", ErrConflict, postgres.Constraint(err))
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// Unavailable tells whether err says that the database is away or cannot
// serve the work for the moment, rather than that the work itself is wrong:
// the connection could not be made or was lost (pgconn.SafeToRetry, a
// timeout, network errors, class 08), the server is shutting down,
// starting, out of resources or failing (classes 53, 57 with statement
// timeouts and cancellations, 58, XX), the transaction was rolled back
// under the work (class 40: serialization failure, deadlock), a lock
// timeout (55P03), the transaction is gone, or the context ended. Such a
// failure is retried later, never blamed on the row being worked on.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	if code := postgres.Code(err); code != "" {
		for _, class := range []string{"08", "40", "53", "57", "58", "XX"} {
			if strings.HasPrefix(code, class) {
				return true
			}
		}
		return code == "55P03" // lock_not_available: lock_timeout
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, pgx.ErrTxClosed) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}
