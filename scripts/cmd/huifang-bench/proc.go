package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat's times
// (100 on every Linux platform Go runs on).
const clockTicks = 100

// procStat is what /proc/<pid>/stat says of a process: its parent and its
// CPU time in seconds, its own and that of its reaped children.
type procStat struct {
	ppid             int
	cpu, childrenCPU float64
	comm             string
}

// readStat reads /proc/<pid>/stat under root ("/proc" outside tests).
func readStat(root string, pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	return parseStat(b)
}

// parseStat parses a /proc/<pid>/stat line: "pid (comm) state ppid ...";
// comm may hold spaces and parentheses, so fields count from the last ')'.
func parseStat(b []byte) (procStat, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("stat: no command in %q", b)
	}
	f := strings.Fields(string(b[end+1:]))
	// After the command: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("stat: %d fields after the command, want at least 15", len(f))
	}
	n := make([]float64, 4)
	for i := range n {
		v, err := strconv.ParseFloat(f[11+i], 64)
		if err != nil {
			return procStat{}, fmt.Errorf("stat: field %d: %w", 14+i, err)
		}
		n[i] = v / clockTicks
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("stat: ppid: %w", err)
	}
	return procStat{ppid: ppid, cpu: n[0] + n[1], childrenCPU: n[2] + n[3], comm: string(b[open+1 : end])}, nil
}

// peakRSS is a process's peak resident set (VmHWM) in bytes.
func peakRSS(root string, pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("read status of %d: %w", pid, err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("status of %d: VmHWM %q", pid, rest)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("status of %d: VmHWM: %w", pid, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("status of %d: no VmHWM", pid)
}

// treeCPU is the CPU seconds of pid and every process under it: its own,
// its children's that ended (reaped), and those of the ones that run. For
// Postgres's postmaster, that is every backend's, past and present.
func treeCPU(root string, pid int) (float64, error) {
	top, err := readStat(root, pid)
	if err != nil {
		return 0, err
	}
	total := top.cpu + top.childrenCPU
	entries, err := os.ReadDir(root)
	if err != nil {
		return 0, fmt.Errorf("list processes: %w", err)
	}
	children := map[int][]int{}
	stats := map[int]procStat{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(root, p)
		if err != nil {
			continue // ended meanwhile
		}
		stats[p] = st
		children[st.ppid] = append(children[st.ppid], p)
	}
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			total += stats[c].cpu + stats[c].childrenCPU
			walk(c)
		}
	}
	walk(pid)
	return total, nil
}
