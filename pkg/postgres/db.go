package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier runs statements: a pool, a connection or a transaction. Stores
// take one, so the same load and save work inside a use case's transaction
// and on the pool.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// DB is a Querier that can also begin a transaction: the pool, or a
// transaction (whose Begin makes a savepoint). A use case that owns its
// transaction begins it on a DB with pgx.BeginFunc, so the same code runs
// alone on the pool or inside a caller's transaction, sharing its commit.
type DB interface {
	Querier
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Error codes of Postgres that stores translate into their own sentinels.
const (
	CodeUniqueViolation      = "23505"
	CodeForeignKeyViolation  = "23503"
	CodeCheckViolation       = "23514"
	CodeSerializationFailure = "40001"
	CodeDeadlockDetected     = "40P01"
	CodeRaiseException       = "P0001"
)

// Code returns the SQLSTATE of err when it is (or wraps) an error Postgres
// answered with, else "".
func Code(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// Constraint returns the constraint an integrity error names, else "".
func Constraint(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.ConstraintName
	}
	return ""
}

// IsTransient tells whether err says the database is away or busy for the
// moment, rather than that the statement is wrong: the connection could not
// be made or was lost, the server is shutting down or starting, too many
// connections, a serialization failure or deadlock, a timeout. Work that
// failed so is retried later; it is never bad input.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	switch code := Code(err); {
	case code == "":
	case strings.HasPrefix(code, "08"), // connection exception
		strings.HasPrefix(code, "57P"), // shutdown, cannot connect now, database dropped
		strings.HasPrefix(code, "53"),  // insufficient resources: too many connections, out of memory or disk
		code == "57014",                // statement timeout, cancelled
		code == "55P03",                // lock timeout
		code == CodeSerializationFailure, code == CodeDeadlockDetected:
		return true
	default:
		return false // the server answered: the statement itself failed
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, pgx.ErrTxClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// DeleteBefore deletes at most limit rows of table whose column holds a
// time before cutoff, and says how many it deleted: one bounded statement
// of a retention purge (a large backlog goes in several, each short).
// Rows whose column is NULL stay.
func DeleteBefore(ctx context.Context, db Querier, table, column string, cutoff time.Time, limit int) (int, error) {
	t, c := pgx.Identifier{table}.Sanitize(), pgx.Identifier{column}.Sanitize()
	tag, err := db.Exec(ctx, `DELETE FROM `+t+` WHERE ctid = ANY (ARRAY(SELECT ctid FROM `+t+` WHERE `+c+` < $1 LIMIT $2))`, cutoff, limit)
	if err != nil {
		return 0, fmt.Errorf("postgres: purge %s: %w", table, err)
	}
	return int(tag.RowsAffected()), nil
}
