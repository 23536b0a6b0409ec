package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

// fakeIntake answers like intake: a record without external_id is refused,
// a known external id is unchanged; failAt makes that call fail (an
// interruption). A call whose first line has a gate waits for the gate's
// error and fails with it (nil: it goes on). Calls may come concurrently.
type fakeIntake struct {
	mu       sync.Mutex
	calls    int
	failAt   int
	seen     map[string]int
	lines    []int64
	gate     map[int64]chan error
	answered []int64 // the first lines of the calls answered
}

func (f *fakeIntake) ImportCustomers(_ context.Context, in *intakev1.ImportCustomersRequest, _ ...grpc.CallOption) (*intakev1.ImportCustomersResponse, error) {
	f.mu.Lock()
	gate := f.gate[in.Records[0].Line]
	f.mu.Unlock()
	if gate != nil {
		if err := <-gate; err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls == f.failAt {
		return nil, errors.New("connection lost")
	}
	resp := &intakev1.ImportCustomersResponse{}
	for i, r := range in.Records {
		f.lines = append(f.lines, r.Line)
		res := &intakev1.ImportRecordResult{Line: r.Line}
		switch c := r.Customer; {
		case c.ExternalId == "":
			res.Outcome = intakev1.ImportOutcome_IMPORT_OUTCOME_REJECTED
			res.Violations = []*intakev1.FieldViolation{{Field: "records[" + string(rune('0'+i%10)) + "].customer.external_id", Rule: "is required"}}
		case f.seen[c.ExternalId] > 0:
			res.Outcome = intakev1.ImportOutcome_IMPORT_OUTCOME_UNCHANGED
		default:
			res.Outcome = intakev1.ImportOutcome_IMPORT_OUTCOME_IMPORTED
		}
		f.seen[r.Customer.ExternalId]++
		resp.Results = append(resp.Results, res)
	}
	f.answered = append(f.answered, in.Records[0].Line)
	return resp, nil
}

func (f *fakeIntake) answeredLines() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(slices.Values(f.answered))
}

const archiveCSV = `external_id,name,phone,email,owner_ids,opted_out,windows,dislikes_calls,time_zone
c-1,王芳,+8613800000001,,s-1;s-2,sms,10:00-11:30,true,Asia/Shanghai
c-2,李娜,,li@example.com,,,,,
,无名,+8613800000003,,,,,,
c-4,赵,+8613800000004,,,fax,,,
c-5,钱,+8613800000005,,,,,,
c-6,孙,+8613800000006,,,,,,
`

func TestCSVRecord(t *testing.T) {
	r, err := newCSVReader(strings.NewReader(archiveCSV))
	require.NoError(t, err)
	rec, line, err := r.next()
	require.NoError(t, err)
	require.EqualValues(t, 2, line)
	require.Equal(t, "王芳", rec.Customer.Name)
	require.Equal(t, []string{"s-1", "s-2"}, rec.Customer.OwnerIds)
	p := rec.Customer.Preferences
	require.Equal(t, []typesv1.Channel{typesv1.Channel_CHANNEL_SMS}, p.OptedOut)
	require.Equal(t, int32(600), p.Windows[0].StartMinute)
	require.Equal(t, int32(690), p.Windows[0].EndMinute)
	require.True(t, p.DislikesCalls)
	require.Equal(t, "Asia/Shanghai", p.TimeZone)

	_, err = newCSVReader(strings.NewReader("external_id,shoe_size\n"))
	require.ErrorContains(t, err, "shoe_size")
}

// An import interrupted after its first batch goes on after the checkpoint:
// every line is sent once in all, and the summary counts the whole file.
func TestResumeAfterInterruption(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "archive.csv")
	require.NoError(t, os.WriteFile(path, []byte(archiveCSV), 0o644))
	fake := &fakeIntake{failAt: 2, seen: map[string]int{}}
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"-batch", "2", "-parallel", "1", path}, &out, &errOut, fake)
	require.ErrorContains(t, err, "connection lost")
	cp, err := readCheckpoint(path + ".checkpoint")
	require.NoError(t, err)
	require.EqualValues(t, 3, cp.Line, "the first batch (lines 2 and 3) is done")

	out.Reset()
	fake.failAt = 0
	require.NoError(t, run(context.Background(), []string{"-batch", "2", path}, &out, &errOut, fake))
	require.Contains(t, errOut.String(), "resuming after line 3")
	require.Contains(t, errOut.String(), "100%")
	require.Equal(t, []int64{2, 3, 4, 6, 7}, slices.Sorted(slices.Values(fake.lines)), "every line sent once (line 5 never parsed)")
	summary := out.String()
	require.Contains(t, summary, "imported 4, updated 0, unchanged 0, rejected 2")
	require.Contains(t, summary, "line 4: customer.external_id: is required")
	require.Contains(t, summary, `line 5: opted_out: unknown channel "fax"`)

	// Run again: the checkpoint says everything is done; -restart sends it all again, unchanged.
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"-batch", "2", path}, &out, &errOut, fake))
	require.Contains(t, out.String(), "imported 4, updated 0, unchanged 0, rejected 2")
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"-batch", "2", "-restart", path}, &out, &errOut, fake))
	require.Contains(t, out.String(), "imported 0, updated 0, unchanged 4, rejected 2")
}

// Calls in flight complete in any order; the checkpoint passes a line only
// once every call up to it succeeded. A call that fails stops the import:
// the calls after it that succeeded are not in the checkpoint, and a
// resumed import sends their records again (answered unchanged).
func TestCheckpointWaitsForEarlierCalls(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "archive.csv")
	var csv strings.Builder
	csv.WriteString("external_id,phone\n")
	for i := range 8 {
		fmt.Fprintf(&csv, "c-%d,+86138000000%02d\n", i, i)
	}
	require.NoError(t, os.WriteFile(path, []byte(csv.String()), 0o644))
	gate := make(chan error)
	fake := &fakeIntake{seen: map[string]int{}, gate: map[int64]chan error{4: gate}} // the call of lines 4–5 waits
	var out, errOut bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"-batch", "2", "-parallel", "3", "-no-progress", path}, &out, &errOut, fake)
	}()
	require.Eventually(t, func() bool { return slices.Equal(fake.answeredLines(), []int64{2, 6, 8}) }, 10*time.Second, time.Millisecond,
		"the calls around the waiting one are answered")
	cp, err := readCheckpoint(path + ".checkpoint")
	require.NoError(t, err)
	require.EqualValues(t, 3, cp.Line, "lines 2–3 are done; 6–9 wait for 4–5")
	require.Equal(t, 2, cp.Imported)
	gate <- errors.New("connection lost")
	require.ErrorContains(t, <-done, "connection lost")
	cp, err = readCheckpoint(path + ".checkpoint")
	require.NoError(t, err)
	require.EqualValues(t, 3, cp.Line, "nothing after the failed call")

	fake.gate = nil
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"-batch", "2", "-parallel", "3", "-no-progress", path}, &out, &errOut, fake))
	require.Contains(t, out.String(), "imported 4, updated 0, unchanged 4, rejected 0", "lines 6–9 again, unchanged")
	cp, err = readCheckpoint(path + ".checkpoint")
	require.NoError(t, err)
	require.EqualValues(t, 9, cp.Line)

	_, err = readCheckpoint(path + ".checkpoint")
	require.NoError(t, err)
	require.ErrorContains(t, run(context.Background(), []string{"-parallel", "0", path}, &out, &errOut, fake), "-parallel must be 1–16")
}

func TestJSONL(t *testing.T) {
	r := newJSONLReader(strings.NewReader(`{"external_id":"c-1","phone":"+8613800000001"}

{"customer":{"external_id":"c-2","email":"a@b.c"},"source_updated_at":"2026-11-01T00:00:00Z"}
{"external_id":
`))
	rec, line, err := r.next()
	require.NoError(t, err)
	require.EqualValues(t, 1, line)
	require.Equal(t, "c-1", rec.Customer.ExternalId)
	rec, line, err = r.next()
	require.NoError(t, err)
	require.EqualValues(t, 3, line)
	require.Equal(t, "c-2", rec.Customer.ExternalId)
	require.EqualValues(t, 3, rec.Line)
	require.NotNil(t, rec.SourceUpdatedAt)
	_, line, err = r.next()
	var bad *badRecord
	require.ErrorAs(t, err, &bad)
	require.EqualValues(t, 4, line)
}

// limitedIntake answers its first call as a rate-limited intake does.
type limitedIntake struct {
	calls int
	code  codes.Code
}

func (l *limitedIntake) ImportCustomers(_ context.Context, in *intakev1.ImportCustomersRequest, _ ...grpc.CallOption) (*intakev1.ImportCustomersResponse, error) {
	l.calls++
	if l.calls == 1 {
		st := status.New(l.code, "rate limit: at most 50 requests a second per caller (bursts of 100); retry in 20ms")
		if l.code == codes.ResourceExhausted {
			st, _ = st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(20 * time.Millisecond)})
		}
		return nil, st.Err()
	}
	return &intakev1.ImportCustomersResponse{Results: make([]*intakev1.ImportRecordResult, len(in.Records))}, nil
}

// A batch refused for the caller's rate (ResourceExhausted with RetryInfo)
// is sent again after the wait; ResourceExhausted without it (a message too
// large) is not.
func TestSendRetriesARateLimit(t *testing.T) {
	req := &intakev1.ImportCustomersRequest{Records: []*intakev1.CustomerRecord{{Line: 2}}}
	limited := &limitedIntake{code: codes.ResourceExhausted}
	_, err := send(context.Background(), limited, req)
	require.NoError(t, err)
	require.Equal(t, 2, limited.calls)

	calls := 0
	_, err = send(context.Background(), importerFunc(func() error { calls++; return status.Error(codes.ResourceExhausted, "message larger than max") }), req)
	require.Equal(t, codes.ResourceExhausted, status.Code(errors.Unwrap(err)))
	require.Equal(t, 1, calls, "not retried")
}

// importerFunc answers every call with the error fn returns.
type importerFunc func() error

func (f importerFunc) ImportCustomers(context.Context, *intakev1.ImportCustomersRequest, ...grpc.CallOption) (*intakev1.ImportCustomersResponse, error) {
	return nil, f()
}
