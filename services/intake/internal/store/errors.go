package store

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
)

// The store's errors: driver errors become these in translate, the one
// place that reads them.
var (
	// ErrNotFound: no such customer, service or rejected input.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a concurrent writer stored the same key first (the same
	// event, or the same complaint of a customer); the transaction is lost,
	// a retry sees the other writer's row.
	ErrConflict = errors.New("the key is taken by a concurrent writer")
	// ErrBusy: a deadlock or serialization failure; the same call succeeds
	// when retried.
	ErrBusy = errors.New("a concurrent change got in the way")
)

// translate turns a driver error into the store's sentinels, keeping the
// driver's error in the chain for the log; other errors pass as they are.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return ErrNotFound
	}
	switch postgres.Code(err) {
	case postgres.CodeUniqueViolation:
		return fmt.Errorf("%w (%s): %w", ErrConflict, postgres.Constraint(err), err)
	case postgres.CodeDeadlockDetected, postgres.CodeSerializationFailure:
		return fmt.Errorf("%w: %w", ErrBusy, err)
	}
	return err
}

// wrap says which operation failed, with the error translated.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("store: %s: %w", op, translate(err))
}
