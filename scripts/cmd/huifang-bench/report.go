package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The markers around the table in docs/benchmarks.md.
const (
	beginMarker = "<!-- make bench: begin (huifang-bench writes what is between these markers) -->"
	endMarker   = "<!-- make bench: end -->"
)

// thousands formats v rounded to an integer with thousands separators.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ms formats milliseconds.
func ms(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.2f s", v/1000)
	case v >= 10:
		return fmt.Sprintf("%.0f ms", v)
	default:
		return fmt.Sprintf("%.1f ms", v)
	}
}

// order is the processes in the order of the pipeline, then the servers.
func order[V any](m map[string]V) []string {
	rank := map[string]int{"intake": 0, "scheduler": 1, "dispatch": 2, "feedback": 3, "analytics": 4, "nats-server": 5, "postgres": 6}
	return slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		ra, oka := rank[a]
		rb, okb := rank[b]
		switch {
		case oka && okb:
			return ra - rb
		case oka:
			return -1
		case okb:
			return 1
		}
		return strings.Compare(a, b)
	})
}

// table is the figures as a Markdown table with a line above it saying
// when, where and what.
func table(r *Result) string {
	var b strings.Builder
	commit := r.Commit
	if commit == "" {
		commit = "unknown commit"
	}
	fmt.Fprintf(&b, "`make bench` on %s, %s, %d CPUs", r.At.Format("2006-01-02"), commit, r.Machine.CPUs)
	if r.Machine.Model != "" {
		fmt.Fprintf(&b, " (%s)", r.Machine.Model)
	}
	fmt.Fprintf(&b, ", %s; everything on this one machine, JetStream synced on every write, Postgres with fsync.\n\n", r.Machine.Go)
	row := func(what, value string) { fmt.Fprintf(&b, "| %s | %s |\n", what, value) }
	b.WriteString("| what | measured |\n| --- | --- |\n")
	row("raw JetStream: one message at a time (256 acks pending)", thousands(r.Raw.JetStreamSingle)+" msgs/s")
	row("raw JetStream: atomic batches of 100 / of 500", thousands(r.Raw.JetStreamBatch100)+" / "+thousands(r.Raw.JetStreamBatch500)+" msgs/s")
	row("raw Postgres, 4 clients: one row per commit / 500 rows per commit", thousands(r.Raw.PostgresSingle)+" / "+thousands(r.Raw.PostgresBatched)+" rows/s")
	s := r.Sustained
	row(fmt.Sprintf("**Huifang ingress → task**, burst of %s completed repairs", thousands(float64(s.Events))),
		fmt.Sprintf("**%s events/s** (%.1f s; published at %s/s)", thousands(s.EventsPerS), s.Seconds, thousands(s.PublishedPerS)))
	row("what Postgres's batched rate allows for the rows Huifang writes per event",
		fmt.Sprintf("%s events/s: Huifang runs at %.0f%% of it", thousands(r.PostgresLimit), 100*r.Ratio))
	l := r.Latency
	settled := ""
	if !l.Settled {
		settled = " (did not settle within 5 minutes)"
	}
	row(fmt.Sprintf("latency from publish at %s/s offered (half the sustained rate), %s events", thousands(l.Rate), thousands(float64(l.Events))),
		fmt.Sprintf("VisitDue p50 %s, p99 %s; task p50 %s, p99 %s%s", ms(l.DueP50), ms(l.DueP99), ms(l.TaskP50), ms(l.TaskP99), settled))
	per := fmt.Sprintf("%.2f commits (%.2f rolled back), %.1f rows, %.1f KB of WAL", s.CommitsPer, s.RollbacksPer, s.RowsPer, s.WALBytesPer/1000)
	if s.StatementsPer > 0 {
		per += fmt.Sprintf(", %.0f statements", s.StatementsPer)
	}
	row("Postgres per event (burst)", per)
	var cpu []string
	total := 0.0
	for _, k := range order(s.CPUPer1000) {
		cpu = append(cpu, fmt.Sprintf("%s %.2f", k, s.CPUPer1000[k]))
		total += s.CPUPer1000[k]
	}
	row("CPU seconds per 1,000 events (burst)", fmt.Sprintf("%s; total %.2f", strings.Join(cpu, ", "), total))
	if len(s.TableRowsPer) > 0 {
		row("rows written per event, by table (burst; inserted/updated/deleted)", tablesLine(s.TableRowsPer))
	}
	var rss []string
	for _, k := range order(r.PeakRSSBytes) {
		rss = append(rss, fmt.Sprintf("%s %d MiB", k, (r.PeakRSSBytes[k]+1<<19)>>20))
	}
	row("peak RSS (whole run)", strings.Join(rss, ", "))
	return b.String()
}

// tablesLine lists the tables by rows written per event, most first.
func tablesLine(m map[string]TableRows) string {
	names := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		if d := m[b].Total() - m[a].Total(); d != 0 {
			if d > 0 {
				return 1
			}
			return -1
		}
		return strings.Compare(a, b)
	})
	const most = 12
	var parts []string
	rest, others := 0.0, 0
	for i, n := range names {
		t := m[n]
		if i >= most {
			rest += t.Total()
			others++
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.1f (%.1f/%.1f/%.1f)", n, t.Total(), t.Inserted, t.Updated, t.Deleted))
	}
	if others > 0 {
		parts = append(parts, fmt.Sprintf("%d others %.1f", others, rest))
	}
	return strings.Join(parts, ", ")
}

func printTable(w io.Writer, r *Result) {
	fmt.Fprint(w, "\n"+table(r))
}

func writeJSON(path string, r *Result) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode figures: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// updateDocs puts the table between the markers of the file at path.
func updateDocs(path string, r *Result) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	out, err := replaceBetween(old, table(r))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// replaceBetween replaces what stands between the markers of doc with body.
func replaceBetween(doc []byte, body string) ([]byte, error) {
	i := bytes.Index(doc, []byte(beginMarker))
	j := bytes.Index(doc, []byte(endMarker))
	switch {
	case i < 0 || j < 0:
		return nil, fmt.Errorf("no table markers: add the lines %q and %q where the table goes", beginMarker, endMarker)
	case j < i:
		return nil, fmt.Errorf("the end marker comes before the begin marker")
	}
	var b bytes.Buffer
	b.Write(doc[:i+len(beginMarker)])
	b.WriteString("\n" + body)
	b.Write(doc[j:])
	return b.Bytes(), nil
}
