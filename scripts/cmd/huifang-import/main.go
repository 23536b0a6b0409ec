// Command huifang-import imports an existing customer archive (CSV or JSON
// Lines) into intake through ImportCustomers, with a progress bar and a
// summary: imported, updated, unchanged and rejected records, the rejected
// ones with their line numbers.
//
//	huifang-import [-addr localhost:7001] [-tenant T] [-batch 1000] [-parallel 4] [-checkpoint F] [-restart] FILE
//
// It sends the records in calls of -batch (intake merges each call's
// records set-wise in one transaction), -parallel calls in flight at once.
// It is resumable: as calls complete it writes a checkpoint (FILE.checkpoint
// by default) with the last line done and the counts so far; run again, it
// goes on after that line. Calls complete in any order, but the checkpoint
// only passes a line once every call up to it has succeeded; a failed call
// (after its retries) stops the import once the calls in flight are done.
// Records sent twice anyway (a crash between a call and its checkpoint, or
// calls after a failed one) change nothing: intake answers them
// "unchanged", and a customer exists once per (tenant, external id).
//
// CSV: a header row naming the columns (any order; unknown ones are an error):
// external_id, name, phone, email, kind, referred_by, org_unit, owner_ids
// (separated by ';'), time_zone, language, dislikes_calls (true/false),
// opted_out (channels separated by ';', e.g. sms;phone), windows (e.g.
// 10:00-11:30;14:00-17:00), source_updated_at (RFC 3339).
//
// JSONL: one object per line: a huifang.types.v1.Customer in protojson, or
// {"customer": {...}, "source_updated_at": "..."}.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

func main() {
	ctx := context.Background()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "huifang-import:", err)
		os.Exit(1)
	}
}

// intake is the part of the intake client the command uses.
type intake interface {
	ImportCustomers(ctx context.Context, in *intakev1.ImportCustomersRequest, opts ...grpc.CallOption) (*intakev1.ImportCustomersResponse, error)
}

// Checkpoint is what an interrupted import needs to go on.
type Checkpoint struct {
	File      string     `json:"file"`
	Size      int64      `json:"size"`
	Tenant    string     `json:"tenant"`
	Line      int64      `json:"line"`
	Imported  int        `json:"imported"`
	Updated   int        `json:"updated"`
	Unchanged int        `json:"unchanged"`
	Rejected  []Rejected `json:"rejected"`
}

// Rejected is one refused record.
type Rejected struct {
	Line   int64  `json:"line"`
	Reason string `json:"reason"`
}

// add counts a batch intake committed into the checkpoint: its outcomes,
// the lines that did not parse, and the last line it covers.
func (cp *Checkpoint) add(b *batch) {
	for _, r := range b.resp.GetResults() {
		switch r.GetOutcome() {
		case intakev1.ImportOutcome_IMPORT_OUTCOME_IMPORTED:
			cp.Imported++
		case intakev1.ImportOutcome_IMPORT_OUTCOME_UPDATED:
			cp.Updated++
		case intakev1.ImportOutcome_IMPORT_OUTCOME_UNCHANGED:
			cp.Unchanged++
		default:
			cp.Rejected = append(cp.Rejected, Rejected{Line: r.GetLine(), Reason: reason(r.GetViolations())})
		}
	}
	cp.Rejected = append(cp.Rejected, b.rejected...)
	cp.Line = b.last
}

// batch is the records of consecutive lines, sent in one call.
type batch struct {
	seq     int
	records []*intakev1.CustomerRecord
	// last is the last line it covers; rejected are its lines that did
	// not parse (reported, not sent).
	last     int64
	rejected []Rejected
	resp     *intakev1.ImportCustomersResponse
	err      error
}

// importer sends the batches of a file, parallel calls in flight, and
// commits them in the file's order: a batch is committed (counted and
// checkpointed) only once every batch before it is, however the calls
// complete, so that a checkpoint never passes a line whose call did not
// succeed. A call that fails stops the import after the calls in flight.
type importer struct {
	client         intake
	tenant, source string
	parallel       int
	commit         func(*batch) error
	next           int // the seq of the next batch to commit
	done           map[int]*batch
	failed         error
}

// run reads the records after line from, sends them in batches of size
// and commits them in order.
func (im *importer) run(ctx context.Context, reader recordReader, from int64, size int) error {
	jobs, results := make(chan *batch), make(chan *batch, im.parallel)
	var workers sync.WaitGroup
	for range im.parallel {
		workers.Go(func() {
			for b := range jobs {
				if len(b.records) > 0 {
					b.resp, b.err = send(ctx, im.client, &intakev1.ImportCustomersRequest{TenantId: im.tenant, Source: im.source, Records: b.records})
				}
				results <- b
			}
		})
	}
	im.done = map[int]*batch{}
	inFlight := 0
	// dispatch hands b to a worker, committing what completes meanwhile;
	// after a failure it sends nothing more. A worker reports its call
	// before it takes the next, so what completed is looked at first.
	dispatch := func(b *batch) {
		for {
			select {
			case r := <-results:
				inFlight--
				im.complete(r)
				continue
			default:
			}
			if im.failed != nil {
				return
			}
			select {
			case jobs <- b:
				inFlight++
				return
			case r := <-results:
				inFlight--
				im.complete(r)
			}
		}
	}
	cur := &batch{last: from}
	var readErr error
	for im.failed == nil {
		rec, line, err := reader.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if line <= from {
			continue
		}
		cur.last = line
		var bad *badRecord
		switch {
		case errors.As(err, &bad):
			cur.rejected = append(cur.rejected, Rejected{Line: line, Reason: bad.reason})
		case err != nil:
			readErr = err
		default:
			cur.records = append(cur.records, rec)
		}
		if readErr != nil {
			break
		}
		if len(cur.records) >= size {
			dispatch(cur)
			cur = &batch{seq: cur.seq + 1, last: cur.last}
		}
	}
	if im.failed == nil && readErr == nil {
		dispatch(cur) // the rest, or only the checkpoint at the last line
	}
	close(jobs)
	for ; inFlight > 0; inFlight-- {
		im.complete(<-results)
	}
	workers.Wait()
	if readErr != nil {
		return readErr
	}
	return im.failed
}

// complete takes a finished call and commits, in order, the batches it
// makes consecutive. A failed call stops the import (failed): the batches
// before it are still committed, none after it.
func (im *importer) complete(b *batch) {
	im.done[b.seq] = b
	if b.err != nil && im.failed == nil {
		im.failed = b.err
	}
	for {
		b, ok := im.done[im.next]
		if !ok || b.err != nil {
			return
		}
		delete(im.done, im.next)
		im.next++
		if err := im.commit(b); err != nil {
			if im.failed == nil {
				im.failed = err
			}
			return
		}
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, client intake) error {
	fs := flag.NewFlagSet("huifang-import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", envOr("INTAKE_ADDR", "localhost:7001"), "intake's gRPC address (env INTAKE_ADDR)")
	tenant := fs.String("tenant", "default", "tenant of the customers")
	source := fs.String("source", "", "name of the source, for intake (default: the file's name)")
	format := fs.String("format", "", "csv or jsonl (default: from the file's extension)")
	batchSize := fs.Int("batch", 1000, "records per call (at most 1000)")
	parallel := fs.Int("parallel", 4, "calls in flight at once (1–16); the checkpoint only passes a line once every call up to it is done")
	checkpoint := fs.String("checkpoint", "", "checkpoint file (default: FILE.checkpoint)")
	restart := fs.Bool("restart", false, "ignore an existing checkpoint and start from the first line")
	noProgress := fs.Bool("no-progress", false, "do not draw the progress bar")
	tokenFile := fs.String("token-file", envOr("HUIFANG_TOKEN_FILE", ".dev/tokens/integrator.jwt"), "file holding the bearer token the calls carry: an integrator's or a tenant admin's (env HUIFANG_TOKEN_FILE; make run writes .dev/tokens/)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: huifang-import [flags] FILE.csv|FILE.jsonl")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("one file is required")
	}
	if *batchSize < 1 || *batchSize > 1000 {
		return errors.New("-batch must be 1–1000")
	}
	if *parallel < 1 || *parallel > 16 {
		return errors.New("-parallel must be 1–16")
	}
	path := fs.Arg(0)
	if *format == "" {
		*format = strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
		if *format == "json" || *format == "ndjson" {
			*format = "jsonl"
		}
	}
	if *format != "csv" && *format != "jsonl" {
		return fmt.Errorf("format %q: want csv or jsonl (-format)", *format)
	}
	if *source == "" {
		*source = filepath.Base(path)
	}
	if *checkpoint == "" {
		*checkpoint = path + ".checkpoint"
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	total, err := countLines(path)
	if err != nil {
		return err
	}

	cp := Checkpoint{File: filepath.Base(path), Size: info.Size(), Tenant: *tenant}
	if !*restart {
		old, err := readCheckpoint(*checkpoint)
		switch {
		case err != nil:
			return err
		case old == nil:
		case old.File != cp.File || old.Size != cp.Size || old.Tenant != cp.Tenant:
			return fmt.Errorf("checkpoint %s is of another file or tenant (%s, %d bytes, tenant %s); use -restart or remove it", *checkpoint, old.File, old.Size, old.Tenant)
		default:
			cp = *old
			fmt.Fprintf(stderr, "resuming after line %d (checkpoint %s)\n", cp.Line, *checkpoint)
		}
	}

	if client == nil {
		token, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("the bearer token (-token-file): %w", err)
		}
		conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(bearer(strings.TrimSpace(string(token)))))
		if err != nil {
			return fmt.Errorf("connect to %s: %w", *addr, err)
		}
		defer conn.Close()
		client = intakev1.NewIntakeServiceClient(conn)
	}

	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var reader recordReader
	if *format == "csv" {
		reader, err = newCSVReader(f)
	} else {
		reader = newJSONLReader(f)
	}
	if err != nil {
		return err
	}

	bar := progress{w: stderr, total: total, off: *noProgress}
	imp := &importer{client: client, tenant: *tenant, source: *source, parallel: *parallel,
		commit: func(b *batch) error {
			cp.add(b)
			bar.draw(cp.Line)
			return writeCheckpoint(*checkpoint, cp)
		}}
	if err := imp.run(ctx, reader, cp.Line, *batchSize); err != nil {
		return err
	}
	bar.done()

	fmt.Fprintf(stdout, "imported %d, updated %d, unchanged %d, rejected %d\n", cp.Imported, cp.Updated, cp.Unchanged, len(cp.Rejected))
	slices.SortFunc(cp.Rejected, func(a, b Rejected) int { return int(a.Line - b.Line) })
	for _, r := range cp.Rejected {
		fmt.Fprintf(stdout, "  line %d: %s\n", r.Line, r.Reason)
	}
	fmt.Fprintf(stdout, "checkpoint: %s (remove it, or use -restart, to import the file again from the start)\n", *checkpoint)
	return nil
}

// send calls ImportCustomers, retrying while intake is unavailable or holds
// the caller to its rate (ResourceExhausted with a RetryInfo: waiting at
// least the delay it asks).
func send(ctx context.Context, client intake, req *intakev1.ImportCustomersRequest) (*intakev1.ImportCustomersResponse, error) {
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		callCtx, cancel := context.WithTimeout(ctx, time.Minute)
		resp, err := client.ImportCustomers(callCtx, req)
		cancel()
		wait, retry := retryable(err)
		if err == nil || attempt == 5 || !retry {
			if err != nil {
				return nil, fmt.Errorf("import lines %d–%d: %w", req.Records[0].GetLine(), req.Records[len(req.Records)-1].GetLine(), err)
			}
			return resp, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(max(delay, wait)):
		}
		delay *= 2
	}
}

// retryable tells whether a failed call is worth trying again, and the
// least wait the server asked for.
func retryable(err error) (time.Duration, bool) {
	st := status.Convert(err)
	switch st.Code() {
	case codes.Unavailable, codes.Aborted, codes.DeadlineExceeded:
		return 0, true
	case codes.ResourceExhausted:
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok {
				return ri.GetRetryDelay().AsDuration(), true
			}
		}
	}
	return 0, false
}

func reason(vs []*intakev1.FieldViolation) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		field := v.GetField()
		if _, rest, ok := strings.Cut(field, "]."); ok && strings.HasPrefix(field, "records[") {
			field = rest
		}
		parts[i] = field + ": " + v.GetRule()
	}
	return strings.Join(parts, "; ")
}

// badRecord is a line that does not parse; it is reported, not sent.
type badRecord struct{ reason string }

func (b *badRecord) Error() string { return b.reason }

type recordReader interface {
	// next returns the next record and its line (from 1); io.EOF at the end.
	next() (*intakev1.CustomerRecord, int64, error)
}

type jsonlReader struct {
	s    *bufio.Scanner
	line int64
}

func newJSONLReader(r io.Reader) *jsonlReader {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 1<<20), 16<<20)
	return &jsonlReader{s: s}
}

var unmarshal = protojson.UnmarshalOptions{DiscardUnknown: false}

func (j *jsonlReader) next() (*intakev1.CustomerRecord, int64, error) {
	for j.s.Scan() {
		j.line++
		text := bytes.TrimSpace(j.s.Bytes())
		if len(text) == 0 {
			continue
		}
		rec := &intakev1.CustomerRecord{Line: j.line}
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(text, &probe); err != nil {
			return nil, j.line, &badRecord{"not a JSON object: " + err.Error()}
		}
		if _, wrapped := probe["customer"]; wrapped {
			if err := unmarshal.Unmarshal(text, rec); err != nil {
				return nil, j.line, &badRecord{"not a customer record: " + err.Error()}
			}
			rec.Line = j.line
		} else {
			rec.Customer = &typesv1.Customer{}
			if err := unmarshal.Unmarshal(text, rec.Customer); err != nil {
				return nil, j.line, &badRecord{"not a customer: " + err.Error()}
			}
		}
		return rec, j.line, nil
	}
	if err := j.s.Err(); err != nil {
		return nil, j.line, err
	}
	return nil, j.line, io.EOF
}

var csvColumns = []string{"external_id", "name", "phone", "email", "kind", "referred_by", "org_unit", "owner_ids",
	"time_zone", "language", "dislikes_calls", "opted_out", "windows", "source_updated_at"}

type csvReader struct {
	r    *csv.Reader
	cols []string
}

func newCSVReader(r io.Reader) (*csvReader, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("csv header: %w", err)
	}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if !slices.Contains(csvColumns, h) {
			return nil, fmt.Errorf("csv header: unknown column %q; known: %s", h, strings.Join(csvColumns, ", "))
		}
		header[i] = h
	}
	if !slices.Contains(header, "external_id") {
		return nil, errors.New("csv header: the column external_id is required")
	}
	return &csvReader{r: cr, cols: header}, nil
}

func (c *csvReader) next() (*intakev1.CustomerRecord, int64, error) {
	row, err := c.r.Read()
	if errors.Is(err, io.EOF) {
		return nil, 0, io.EOF
	}
	var perr *csv.ParseError
	if errors.As(err, &perr) {
		return nil, int64(perr.StartLine), &badRecord{"CSV: " + perr.Err.Error()}
	}
	if err != nil {
		return nil, 0, err
	}
	// Only a record read tells its fields' positions (FieldPos panics after
	// a row that failed in its first field).
	line, _ := c.r.FieldPos(0)
	if len(row) != len(c.cols) {
		return nil, int64(line), &badRecord{fmt.Sprintf("has %d fields, the header %d", len(row), len(c.cols))}
	}
	rec := &intakev1.CustomerRecord{Line: int64(line), Customer: &typesv1.Customer{}}
	cust := rec.Customer
	prefs := &typesv1.ContactPreferences{}
	hasPrefs := false
	for i, col := range c.cols {
		v := strings.TrimSpace(row[i])
		if v == "" {
			continue
		}
		switch col {
		case "external_id":
			cust.ExternalId = v
		case "name":
			cust.Name = v
		case "phone":
			cust.Phone = v
		case "email":
			cust.Email = v
		case "kind":
			cust.Kind = v
		case "referred_by":
			cust.ReferredBy = v
		case "org_unit":
			cust.OrgUnit = v
		case "owner_ids":
			cust.OwnerIds = split(v)
		case "time_zone":
			prefs.TimeZone, hasPrefs = v, true
		case "language":
			prefs.Language, hasPrefs = v, true
		case "dislikes_calls":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, rec.Line, &badRecord{"dislikes_calls: must be true or false"}
			}
			prefs.DislikesCalls, hasPrefs = b, true
		case "opted_out":
			for _, ch := range split(v) {
				n, ok := typesv1.Channel_value["CHANNEL_"+strings.ToUpper(strings.TrimPrefix(strings.ToUpper(ch), "CHANNEL_"))]
				if !ok || n == 0 {
					return nil, rec.Line, &badRecord{fmt.Sprintf("opted_out: unknown channel %q (phone, sms, onsite, email, web)", ch)}
				}
				prefs.OptedOut = append(prefs.OptedOut, typesv1.Channel(n))
			}
			hasPrefs = true
		case "windows":
			for _, w := range split(v) {
				win, err := window(w)
				if err != nil {
					return nil, rec.Line, &badRecord{"windows: " + err.Error()}
				}
				prefs.Windows = append(prefs.Windows, win)
			}
			hasPrefs = true
		case "source_updated_at":
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return nil, rec.Line, &badRecord{"source_updated_at: must be RFC 3339, e.g. 2026-11-28T10:00:00Z"}
			}
			rec.SourceUpdatedAt = timestamppb.New(t)
		}
	}
	if hasPrefs {
		cust.Preferences = prefs
	}
	return rec, rec.Line, nil
}

func split(v string) []string {
	var out []string
	for _, p := range strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == '|' }) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// window reads "10:00-11:30".
func window(s string) (*typesv1.ContactWindow, error) {
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return nil, fmt.Errorf("%q: want HH:MM-HH:MM", s)
	}
	a, err := minute(from)
	if err != nil {
		return nil, err
	}
	b, err := minute(to)
	if err != nil {
		return nil, err
	}
	return &typesv1.ContactWindow{StartMinute: a, EndMinute: b}, nil
}

func minute(s string) (int32, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("%q: want HH:MM", s)
	}
	return int32(hh*60 + mm), nil
}

func countLines(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n int64
	buf := make([]byte, 64<<10)
	last := byte('\n')
	for {
		k, err := f.Read(buf)
		n += int64(bytes.Count(buf[:k], []byte{'\n'}))
		if k > 0 {
			last = buf[k-1]
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if last != '\n' {
		n++
	}
	return n, nil
}

func readCheckpoint(path string) (*Checkpoint, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var cp Checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return &cp, nil
}

// writeCheckpoint replaces the checkpoint atomically (write, then rename).
func writeCheckpoint(path string, cp Checkpoint) error {
	b, err := json.MarshalIndent(cp, "", " ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// progress draws a bar of lines done on one terminal line.
type progress struct {
	w     io.Writer
	total int64
	off   bool
	drawn bool
}

func (p *progress) draw(line int64) {
	if p.off || p.total == 0 {
		return
	}
	const width = 40
	frac := min(float64(line)/float64(p.total), 1)
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r[%s%s] %3.0f%%  line %d of %d", strings.Repeat("#", n), strings.Repeat(".", width-n), frac*100, line, p.total)
	p.drawn = true
}

func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// bearer is a call credential carrying a token over a plain connection
// (loopback development; use TLS elsewhere).
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }
