package app

import (
	"errors"
	"fmt"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/intake/internal/ingest"
	"github.com/huifang/huifang/services/intake/internal/store"
)

// Errors of the use cases, besides *invalid.Error for input that breaks a rule.
var (
	// ErrNotFound: no such customer or refused input.
	ErrNotFound = store.ErrNotFound
	// ErrConflict: the same event or customer was being stored by a
	// concurrent call, which won; a retry sees its result.
	ErrConflict = errors.New("the same event or customer is being stored concurrently; retry")
	// ErrBusy: a deadlock or serialization failure; retry.
	ErrBusy = store.ErrBusy
	// ErrAlreadyReplayed: a refused input is replayed once.
	ErrAlreadyReplayed = ingest.ErrAlreadyReplayed
)

// notFound says what was not found.
func notFound(what string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no such %s: %w", what, ErrNotFound)
	}
	return err
}

// asInvalid is the *invalid.Error of an invalid.List's Err.
func asInvalid(err error) *invalid.Error {
	bad, _ := invalid.As(err)
	return bad
}
