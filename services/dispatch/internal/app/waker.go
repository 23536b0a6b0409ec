package app

import "sync"

// Waker wakes long-polling claims when work may have appeared; safe for
// concurrent use. Other replicas' changes are seen by polling.
type Waker struct {
	mu sync.Mutex
	ch chan struct{}
}

// Notify wakes every waiter.
func (w *Waker) Notify() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}

// C returns a channel closed at the next Notify.
func (w *Waker) C() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}
