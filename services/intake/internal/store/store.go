// Package store keeps intake's customer archive, service records, service
// types and refused inputs in Postgres (schema intake). It is persistence
// only: loads and saves, queries, and update-by-closure where a use case
// reads, decides and writes (the decision is the closure's). Every function
// takes a postgres.Querier, so it runs in the caller's transaction; driver
// errors become the store's sentinels (ErrNotFound, ErrConflict, ErrBusy) in
// translate. A customer's name, phone and email are sealed at rest under a
// data key of its own (keys.go), wrapped by its tenant's key-encryption key;
// phones and emails are hashed for search with the privacy.Cipher, and
// refused payloads are sealed with its key ring.
package store

import (
	"sync"

	"github.com/huifang/huifang/services/intake/internal/privacy"
)

// DefaultKeyCache is how many unwrapped data keys a Store keeps unless
// KeyCache says otherwise.
const DefaultKeyCache = 4096

// Store is intake's storage.
type Store struct {
	// Cipher hashes contacts for search, seals refused payloads and opens
	// contacts sealed before data keys.
	Cipher *privacy.Cipher
	// Keys wraps the customers' data keys; nil: the Cipher's key ring
	// (Cipher.Wrapper).
	Keys privacy.KeyWrapper
	// KeyCache bounds the unwrapped data keys kept in memory; 0: DefaultKeyCache.
	KeyCache int

	once  sync.Once
	cache *privacy.KeyCache
}

// keys is the wrapper of the data keys.
func (s *Store) keys() privacy.KeyWrapper {
	if s.Keys != nil {
		return s.Keys
	}
	return s.Cipher.Wrapper()
}

// keyCache is the cache of unwrapped data keys, made at first use.
func (s *Store) keyCache() *privacy.KeyCache {
	s.once.Do(func() {
		n := s.KeyCache
		if n <= 0 {
			n = DefaultKeyCache
		}
		s.cache = privacy.NewKeyCache(n)
	})
	return s.cache
}
