package privacy

import (
	"bytes"
	"container/list"
	"sync"
)

// KeyCache keeps the unwrapped data keys of the customers read last, at
// most a fixed number (least recently used out first), so that reads do not
// unwrap each time. An entry holds the wrapped key it was unwrapped from and
// answers only for the same version and wrapped bytes: a key re-wrapped,
// replaced or made in a transaction that rolled back is never mistaken for
// the one cached. Safe for concurrent use.
type KeyCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *cacheEntry, most recent first
	byID  map[cacheID]*list.Element
}

type cacheID struct{ tenant, customer string }

type cacheEntry struct {
	id      cacheID
	version int64
	wrapped []byte
	key     *DataKey
}

// NewKeyCache returns a cache of at most max keys (at least 1).
func NewKeyCache(size int) *KeyCache {
	return &KeyCache{max: max(1, size), order: list.New(), byID: map[cacheID]*list.Element{}}
}

// Get returns the customer's data key cached for exactly this version and
// wrapped key.
func (c *KeyCache) Get(tenant, customer string, version int64, wrapped []byte) (*DataKey, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byID[cacheID{tenant, customer}]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if e.version != version || !bytes.Equal(e.wrapped, wrapped) {
		return nil, false
	}
	c.order.MoveToFront(el)
	return e.key, true
}

// Latest returns the customer's data key cached last, with the version and
// wrapped key it was cached for: a guess the caller must check against the
// stored key (see store's save).
func (c *KeyCache) Latest(tenant, customer string) (version int64, wrapped []byte, key *DataKey, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byID[cacheID{tenant, customer}]
	if !ok {
		return 0, nil, nil, false
	}
	c.order.MoveToFront(el)
	e := el.Value.(*cacheEntry)
	return e.version, e.wrapped, e.key, true
}

// Put caches the customer's data key unwrapped from wrapped.
func (c *KeyCache) Put(tenant, customer string, version int64, wrapped []byte, key *DataKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := cacheID{tenant, customer}
	e := &cacheEntry{id: id, version: version, wrapped: bytes.Clone(wrapped), key: key}
	if el, ok := c.byID[id]; ok {
		el.Value = e
		c.order.MoveToFront(el)
		return
	}
	c.byID[id] = c.order.PushFront(e)
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byID, last.Value.(*cacheEntry).id)
	}
}

// Evict forgets the customer's data key.
func (c *KeyCache) Evict(tenant, customer string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[cacheID{tenant, customer}]; ok {
		c.order.Remove(el)
		delete(c.byID, cacheID{tenant, customer})
	}
}

// Len is how many keys are cached.
func (c *KeyCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
