package load

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteArchive(t *testing.T) {
	var a, b bytes.Buffer
	require.NoError(t, WriteArchive(&a, 10000, 7))
	require.NoError(t, WriteArchive(&b, 10000, 7))
	require.Equal(t, a.String(), b.String(), "the same seed writes the same file")

	rows, err := csv.NewReader(&a).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 10001)
	require.Equal(t, strings.Split(ArchiveHeader, ","), rows[0])
	seen, repeats, fleets, referred, prefs := map[string]bool{}, 0, 0, 0, 0
	for _, r := range rows[1:] {
		require.Len(t, r, len(rows[0]))
		require.Regexp(t, `^\p{Han}{2,3}$`, r[1])
		require.Regexp(t, `^\+861\d{10}$`, r[2])
		if seen[r[0]] {
			repeats++
		}
		seen[r[0]] = true
		if r[4] == "fleet" {
			fleets++
		}
		if r[5] != "" {
			referred++
		}
		if r[11] != "" {
			prefs++
		}
	}
	require.InDelta(t, 300, repeats, 100, "about 3%% of the lines repeat a customer")
	require.InDelta(t, 1000, fleets, 150)
	require.InDelta(t, 500, referred, 100)
	require.InDelta(t, 3333, prefs, 300)
}
