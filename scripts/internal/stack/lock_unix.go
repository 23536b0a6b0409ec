//go:build unix

package stack

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// LockMachine takes an exclusive lock shared by every process on this
// machine that asks for the same name (a file in the temporary folder,
// flock), waiting while another holds it, and returns its release. The
// system tests (scripts/e2e, scripts/chaos) each run a whole Huifang with
// deadlines; `go test ./...` starts their binaries side by side, and on two
// cores each would slow the other down: the lock runs them one after the
// other. The lock also ends with the process.
func LockMachine(name string) (func(), error) {
	path := filepath.Join(os.TempDir(), "huifang-"+name+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("stack: lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("stack: lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}
