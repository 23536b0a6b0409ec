//go:build !linux

package stack

import "syscall"

// sysProcAttr puts a service in its own process group, so that Ctrl-C in a
// terminal reaches only the program that manages the stack, which stops the
// services in order.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
