package store

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
)

// The store's sentinels: what a caller may decide on.
var (
	// ErrNotFound: the row asked for does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a row with the same key exists already.
	ErrConflict = errors.New("store: already exists")
)

// translate turns a driver error into the store's sentinels (wrapped, with
// the constraint a conflict names); other errors are returned as they are.
// It is the one place that reads pgx's and Postgres' errors.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return ErrNotFound
	case postgres.Code(err) == postgres.CodeUniqueViolation:
		return fmt.Errorf("%w (%s): %w", ErrConflict, postgres.Constraint(err), err)
	}
	return err
}
