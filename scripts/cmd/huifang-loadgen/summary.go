package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// ms formats a latency given in milliseconds.
func ms(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.1fs", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.2fs", v/1000)
	case v >= 10:
		return fmt.Sprintf("%.0fms", v)
	default:
		return fmt.Sprintf("%.1fms", v)
	}
}

// fields lists counts by name, the largest first: "payload 5, service_type 3".
func fields(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// printSummary writes the summary as text.
func printSummary(w io.Writer, s *Summary) {
	target := fmt.Sprintf("%g/s", s.TargetRate)
	if s.TargetRate == 0 {
		target = "as fast as possible"
	}
	fmt.Fprintf(w, "huifang-loadgen run %s (seed %d, source_system %s) against %s, started %s\n",
		s.RunID, s.Seed, s.SourceSystem, s.NATS, s.StartedAt.Format("2006-01-02 15:04:05Z"))
	fmt.Fprintf(w, "published %d in %.1fs (%.1f/s, target %s): acked %d, failed %d\n",
		s.Published, s.PublishSeconds, s.PublishRate, target, s.Acked, s.Failed)
	if s.Failed > 0 {
		fmt.Fprintf(w, "  publish errors: %s\n", topErrors(s.Errors, 5))
	}
	fmt.Fprintf(w, "  acked: %d valid, %d resends, %d malformed (%s)\n",
		s.Kinds["valid"], s.Kinds["resend"], s.Kinds["malformed"], fields(s.MalformedFields))
	fmt.Fprintf(w, "intake: ServiceCompleted for %d of %d valid events (%d missing, %d seen twice); %d dead letters on huifang.deadletter.intake (%s)\n",
		s.Latency[stageService].Count, s.Kinds["valid"], s.ServicesMissing, s.ServicesTwice, s.DeadLetters, fields(s.DeadLetterFields))

	fmt.Fprintf(w, "latency from publish      %7s %9s %9s %9s %9s\n", "count", "p50", "p90", "p99", "max")
	for _, st := range []struct{ name, stage string }{
		{"ack (in the stream)", stageAck}, {"ServiceCompleted", stageService}, {"VisitPlanned (1st)", stagePlanned},
		{"VisitDue (1st)", stageDue}, {"task (dispatch.tasks)", stageTask},
	} {
		p, ok := s.Latency[st.stage]
		switch {
		case !ok:
			fmt.Fprintf(w, "  %-23s not measured (no -database-url)\n", st.name)
		case p.Count == 0:
			fmt.Fprintf(w, "  %-23s %7d\n", st.name, 0)
		default:
			fmt.Fprintf(w, "  %-23s %7d %9s %9s %9s %9s\n", st.name, p.Count, ms(p.P50), ms(p.P90), ms(p.P99), ms(p.Max))
		}
	}

	header := func(first string) {
		fmt.Fprintf(w, "%-22s %7s %9s %9s %9s", first, "valid", "service", "planned", "due")
		if s.TasksMeasured {
			fmt.Fprintf(w, " %9s", "task")
		}
		fmt.Fprintln(w)
	}
	row := func(name string, c *Counts) {
		fmt.Fprintf(w, "  %-20s %7d %9d %9d %9d", name, c.Valid, c.Services, c.Planned, c.Due)
		if s.TasksMeasured {
			fmt.Fprintf(w, " %9d", c.Tasks)
		}
		fmt.Fprintln(w)
	}
	header("by service type")
	for _, k := range slices.Sorted(maps.Keys(s.ByType)) {
		row(k, s.ByType[k])
	}
	if len(s.ByTenant) > 1 {
		header("by tenant")
		for _, k := range slices.Sorted(maps.Keys(s.ByTenant)) {
			row(k, s.ByTenant[k])
		}
	}

	end := map[string]string{
		"settled":     "settled: every event's ServiceCompleted, every due visit fired, every dead letter in, nothing new for 2s",
		"timeout":     "-wait ran out before the pipeline settled",
		"interrupted": "interrupted",
		"skipped":     "not waited for (-wait 0)",
	}[s.Wait]
	fmt.Fprintf(w, "after the last publish: %s (%.1fs)", end, s.WaitSeconds)
	if s.VisitsDueNotFired > 0 {
		fmt.Fprintf(w, "; %d planned visits due but not fired", s.VisitsDueNotFired)
	}
	if s.TasksMeasured && s.FiredWithoutTask > 0 {
		fmt.Fprintf(w, "; %d fired visits without a task", s.FiredWithoutTask)
	}
	if s.Undecodable > 0 {
		fmt.Fprintf(w, "; %d events could not be decoded", s.Undecodable)
	}
	fmt.Fprintln(w)
}
