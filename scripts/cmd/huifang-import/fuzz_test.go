package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// readAll reads every record of r until io.EOF or an error that ends the
// file, and checks what the reader promises: a record has a customer and
// the line it came from (counting up), a line that does not parse is a
// *badRecord (reported, the next one read), and nothing else goes wrong
// but the scanner's own bound on a JSONL line.
func readAll(t *testing.T, r recordReader) {
	t.Helper()
	var last int64
	for range 100_000 {
		rec, line, err := r.next()
		var bad *badRecord
		switch {
		case errors.Is(err, io.EOF):
			return
		case errors.As(err, &bad):
			if bad.reason == "" {
				t.Fatalf("line %d: a bad record without a reason", line)
			}
			continue
		case errors.Is(err, bufio.ErrTooLong):
			return
		case err != nil:
			t.Fatalf("line %d: %T %v: want a *badRecord", line, err, err)
		}
		if rec == nil || rec.Customer == nil {
			t.Fatalf("line %d: a record without a customer", line)
		}
		if rec.Line != line || line <= last {
			t.Fatalf("record line %d, reported %d, after %d: want the same, counting up", rec.Line, line, last)
		}
		last = line
	}
	t.Fatal("the reader did not end")
}

// FuzzJSONLReader: whatever a customer archive in JSON lines holds, the
// reader reports each line as a record or a bad record and never panics.
func FuzzJSONLReader(f *testing.F) {
	for _, seed := range []string{
		`{"external_id":"c-1","name":"王芳","phone":"+8613800000001"}` + "\n" + `{"customer":{"external_id":"c-2"},"source_updated_at":"2026-11-28T10:00:00Z"}`,
		"\n\n{}\n",
		`{"external_id":`,
		`[1,2,3]`,
		`{"customer":"not an object"}`,
		`{"external_id":"c-1","unknown":1}`,
		`{"customer":{"external_id":"c-1"},"line":99}`,
		`{"preferences":{"opted_out":["CHANNEL_SMS"],"windows":[{"start_minute":600,"end_minute":690}]}}`,
		"\xff\xfe{}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		readAll(t, newJSONLReader(bytes.NewReader(data)))
	})
}

// FuzzCSVReader: whatever a customer archive in CSV holds, the header is
// taken or refused with an error, and each row is a record or a bad record;
// the reader never panics.
func FuzzCSVReader(f *testing.F) {
	f.Add([]byte(archiveCSV))
	for _, seed := range []string{
		"external_id\n" + `a"b` + "\n",
		"external_id,name\n\"c-1\",\"unterminated\n",
		"\ufeffexternal_id,opted_out,windows\nc-1,fax,25:00-26:00\n",
		"external_id,source_updated_at,dislikes_calls\nc-1,yesterday,maybe\n",
		"external_id\nc-1,extra\n",
		"name\nc-1\n",
		"",
		"external_id,windows\nc-1,10:00\nc-2,-\nc-3,10:00-11:30|15:30-17:00\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := newCSVReader(bytes.NewReader(data))
		if err != nil {
			return // the header is refused as a whole, before any record
		}
		readAll(t, r)
	})
}
