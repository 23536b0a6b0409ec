package servicetest

import "sync/atomic"

// Wakes stands for an outbox relay an application wakes after its
// commits: it counts the wake-ups (Notify), so that a test can tell
// whether a command or a loop's round woke it.
type Wakes struct{ n atomic.Int64 }

// Notify counts one wake-up.
func (w *Wakes) Notify() { w.n.Add(1) }

// Count is how many wake-ups came since the last Reset.
func (w *Wakes) Count() int64 { return w.n.Load() }

// Reset forgets the wake-ups so far.
func (w *Wakes) Reset() { w.n.Store(0) }
