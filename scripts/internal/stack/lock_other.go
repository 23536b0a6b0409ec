//go:build !unix

package stack

// LockMachine is a no-op where flock is not available.
func LockMachine(name string) (func(), error) { return func() {}, nil }
