package app

import "runtime/debug"

// DefaultGOGC is the garbage collector's target of a service whose
// environment sets no GOGC: a service's live heap is small (tens of MiB)
// and it allocates per event, so at Go's default of 100 the collector took
// 11–21% of each service's CPU in make bench's profiles, and about 3% at
// 400, for about twice the resident memory (docs/configuration.md).
// GOMEMLIMIT, which the Kubernetes manifests set to the container's memory
// limit, still bounds the heap.
const DefaultGOGC = 400

// gcTarget sets the collector's target to DefaultGOGC unless the
// environment (lookup: os.LookupEnv) sets GOGC, which the runtime has
// applied already; it reports whether it set it.
func gcTarget(lookup func(string) (string, bool)) bool {
	if _, ok := lookup("GOGC"); ok {
		return false
	}
	debug.SetGCPercent(DefaultGOGC)
	return true
}
