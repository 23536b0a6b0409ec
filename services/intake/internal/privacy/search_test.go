package privacy_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/intake/internal/privacy"
)

// What a name or phone searched for matches, and what it does not
// (docs/intake.md, "Finding a customer").
func TestSearchHashesMatch(t *testing.T) {
	c, err := privacy.New(privacy.DevKeys, privacy.DevHashKey)
	require.NoError(t, err)
	other, err := privacy.New(privacy.DevKeys, "b3RoZXItaGFzaC1rZXktMTIzNDU2Nzg=")
	require.NoError(t, err)
	overlaps := func(stored, query []string) bool {
		for _, q := range query {
			for _, s := range stored {
				if q == s {
					return true
				}
			}
		}
		return false
	}
	cases := []struct {
		name, phone string // stored
		query       string // a name searched for
		match       bool
	}{
		{"王芳", "", "王芳", true},
		{"王芳", "", "王 芳", true},
		{"王芳", "", "王", true},  // the surname
		{"王芳", "", "芳", false}, // the given name alone
		{"王芳", "", "王芳芳", false},
		{"欧阳明华", "", "欧阳", true}, // a compound surname
		{"欧阳明华", "", "欧", true},
		{"欧阳明华", "", "明华", false},
		{"Wang Fang", "", "wang fang", true},
		{"Wang Fang", "", "WangFang", true},
		{"Wang Fang", "", "wang", true},
		{"Wang Fang", "", "FANG", true},
		{"Wang Fang", "", "fang wang", false}, // another order of the whole name
		{"Wang Fang", "", "wan", false},       // no prefixes of words
		{"Anna-Maria Li", "", "anna-maria", true},
		{"Anna-Maria Li", "", "anna", false},
	}
	for _, tc := range cases {
		got := overlaps(c.SearchHashes(tc.name, tc.phone), c.NameQueryHashes(tc.query))
		require.Equal(t, tc.match, got, "%q searched as %q", tc.name, tc.query)
	}

	stored := c.SearchHashes("", "+86 138-0013-8000")
	for _, q := range []string{"8000", "38000", "13800138000", "8613800138000"} {
		require.Contains(t, stored, c.PhoneTailHash(privacy.PhoneDigits(q)), q)
		require.NotContains(t, stored, other.PhoneTailHash(privacy.PhoneDigits(q)), "another HASH_KEY makes other hashes")
	}
	for _, q := range []string{"1380", "0013", "9000", "18613800138000"} {
		require.NotContains(t, stored, c.PhoneTailHash(privacy.PhoneDigits(q)), "%s: only the last digits match", q)
	}
	require.Len(t, stored, 13-4+1, "one hash per tail of 4 to 13 digits")
	require.Empty(t, c.SearchHashes("", ""))
	require.Empty(t, c.SearchHashes("  ", "123"), "fewer than 4 digits make no phone hash")
	// The hashes are keyed and of their own domain: no clear value, not the lookup hash.
	for _, h := range c.SearchHashes("王芳", "+8613800138000") {
		require.NotContains(t, h, "8000")
		require.NotEqual(t, c.HashPhone("+8613800138000"), h)
	}
}
