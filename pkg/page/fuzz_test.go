package page

import (
	"testing"
	"time"

	"github.com/huifang/huifang/pkg/invalid"
)

// FuzzCursor: whatever page_token a caller sends, it becomes the cursor it
// encodes or is refused as bad input naming page_token; never a panic. A
// cursor read comes back the same through Token.
func FuzzCursor(f *testing.F) {
	type cursor struct {
		At time.Time `json:"at"`
		ID string    `json:"id"`
	}
	f.Add(Token(cursor{At: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC), ID: "x"}))
	f.Add("")
	f.Add("not a token")
	f.Add("e30")                     // {}
	f.Add("bnVsbA")                  // null
	f.Add("eyJhdCI6MTIzfQ")          // {"at":123}
	f.Add("eyJpZCI6WzEsMiwzXX0")     // {"id":[1,2,3]}
	f.Add("eyJhdCI6IjEwMDAwLTAxIn0") // {"at":"10000-01"}
	f.Fuzz(func(t *testing.T, token string) {
		var c cursor
		err := Cursor(token, &c)
		if err != nil {
			bad, ok := invalid.As(err)
			if !ok || len(bad.Violations) != 1 || bad.Violations[0].Field != "page_token" {
				t.Fatalf("%v: want bad input naming page_token", err)
			}
			return
		}
		var back cursor
		if err := Cursor(Token(c), &back); err != nil {
			t.Fatalf("a cursor read does not come back: %v", err)
		}
		if !back.At.Equal(c.At) || back.ID != c.ID {
			t.Fatalf("cursor %+v came back %+v", c, back)
		}
	})
}

// FuzzSize: whatever page_size a caller sends, it becomes a size from 1 to
// Max or is refused as bad input naming page_size.
func FuzzSize(f *testing.F) {
	for _, n := range []int32{0, 1, Max, Max + 1, -1, 1<<31 - 1, -1 << 31} {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, requested int32) {
		n, err := Size(requested)
		if err != nil {
			if bad, ok := invalid.As(err); !ok || bad.Violations[0].Field != "page_size" {
				t.Fatalf("%v: want bad input naming page_size", err)
			}
			return
		}
		if n < 1 || n > Max {
			t.Fatalf("size %d for %d", n, requested)
		}
	})
}
