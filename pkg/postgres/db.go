package postgres

import (
	"context"
	"errors"

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
