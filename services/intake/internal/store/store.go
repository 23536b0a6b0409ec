// Package store keeps intake's customer archive, service records, service
// types and refused inputs in Postgres (schema intake). It is persistence
// only: loads and saves, queries, and update-by-closure where a use case
// reads, decides and writes (the decision is the closure's). Every function
// takes a postgres.Querier, so it runs in the caller's transaction; driver
// errors become the store's sentinels (ErrNotFound, ErrConflict, ErrBusy) in
// translate. Contacts are sealed at rest and hashed for search with the
// privacy.Cipher; refused payloads are sealed with it too.
package store

import (
	"github.com/huifang/huifang/services/intake/internal/privacy"
)

// Store is intake's storage.
type Store struct {
	Cipher *privacy.Cipher
}
