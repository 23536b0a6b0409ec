// Package store keeps the scheduler's policies, contact policies, customer
// preferences, completed services and planned visits in Postgres:
// persistence only. Every function takes the postgres.Querier (or the
// pgx.Tx) it runs on, so it works alone on the pool or inside a use case's
// transaction; where a use case reads, decides and writes, an update by
// closure locks the rows (SELECT … FOR UPDATE), lets the closure decide and
// saves. Driver errors become the store's sentinels in one place (translate).
package store

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
)

// The store's sentinels.
var (
	// ErrNotFound: no such policy, visit or customer.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a row with the same key exists (a tenant's policy name, a
	// policy version).
	ErrConflict = errors.New("already exists")
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
