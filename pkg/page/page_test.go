package page

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/invalid"
)

func TestSize(t *testing.T) {
	n, err := Size(0)
	require.NoError(t, err)
	require.Equal(t, Default, n)
	n, err = Size(7)
	require.NoError(t, err)
	require.Equal(t, 7, n)
	_, err = Size(Max + 1)
	bad, ok := invalid.As(err)
	require.True(t, ok)
	require.Equal(t, "page_size", bad.Violations[0].Field)
}

func TestTokenRoundTrip(t *testing.T) {
	type cur struct {
		At time.Time
		ID string
	}
	in := cur{At: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC), ID: "x"}
	var out cur
	require.NoError(t, Cursor(Token(in), &out))
	require.True(t, in.At.Equal(out.At))
	require.Equal(t, in.ID, out.ID)
	err := Cursor("%%%", &out)
	bad, ok := invalid.As(err)
	require.True(t, ok)
	require.Equal(t, "page_token", bad.Violations[0].Field)
}

func TestTrim(t *testing.T) {
	rows, next := Trim([]string{"a", "b", "c"}, 2, func(last string) any { return last })
	require.Equal(t, []string{"a", "b"}, rows)
	var cur string
	require.NoError(t, Cursor(next, &cur))
	require.Equal(t, "b", cur, "the next page starts after the last row kept")
	rows, next = Trim([]string{"a", "b"}, 2, func(last string) any { return last })
	require.Equal(t, []string{"a", "b"}, rows)
	require.Empty(t, next, "no token on the last page")
}
