package store

import (
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
)

// Errors the store reports; translate makes them of the driver's.
var (
	// ErrNotFound: no such row, or a row it refers to does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: the row exists already (a unique key is taken).
	ErrConflict = errors.New("store: conflict")
)

// translate turns the driver's errors into the store's sentinels (wrapped,
// so that the driver's message stays); the one place that looks at them.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return ErrNotFound
	}
	switch postgres.Code(err) {
	case postgres.CodeUniqueViolation:
		return &driverError{sentinel: ErrConflict, err: err}
	case postgres.CodeForeignKeyViolation:
		return &driverError{sentinel: ErrNotFound, err: err}
	}
	return err
}

// driverError is a driver's error that is one of the store's sentinels.
type driverError struct {
	sentinel error
	err      error
}

func (e *driverError) Error() string { return e.sentinel.Error() + ": " + e.err.Error() }

func (e *driverError) Unwrap() []error { return []error{e.sentinel, e.err} }
