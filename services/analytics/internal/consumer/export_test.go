package consumer

// PauseRenewals holds l's lease renewals, as a paused process would, until
// resume is called; nothing else of l stops.
func PauseRenewals(l *Leader) (resume func()) {
	ch := make(chan struct{})
	l.paused.Store(&ch)
	return func() {
		if l.paused.CompareAndSwap(&ch, nil) {
			close(ch)
		}
	}
}

// SetFault lets a test fail (or hold) g's rebuilds at a stage: "replay" in
// each replayed batch's transaction, "swap" in the swap's before its commit.
func SetFault(g *Gate, f func(stage string) error) { g.fault = f }
