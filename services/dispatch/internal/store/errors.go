package store

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
)

// The store's sentinels: what callers test with errors.Is.
var (
	ErrAgentNotFound   = errors.New("store: agent not found")
	ErrTaskNotFound    = errors.New("store: task not found")
	ErrMessageNotFound = errors.New("store: message not found")
	// ErrConflict: the write breaks a uniqueness or reference rule of the schema.
	ErrConflict = errors.New("store: conflicting write")
	// errNone: a lookup whose "no row" is an answer, not a failure.
	errNone = errors.New("store: none")
)

// translate turns what the driver returned while the store was doing
// `doing` into the store's sentinels, in this one place: no row is
// notFound (the sentinel of what was looked up; a plain error when nil),
// a unique or foreign-key violation is ErrConflict naming the constraint;
// anything else is wrapped with what the store was doing.
func translate(err error, doing string, notFound error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows) && notFound != nil:
		return notFound
	}
	switch postgres.Code(err) {
	case postgres.CodeUniqueViolation, postgres.CodeForeignKeyViolation:
		return fmt.Errorf("%w: %s: %s", ErrConflict, doing, postgres.Constraint(err))
	}
	return fmt.Errorf("store: %s: %w", doing, err)
}
