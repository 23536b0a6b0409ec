package archive

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

var (
	t1 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	t2 = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
)

func TestMerge(t *testing.T) {
	prefs := &typesv1.ContactPreferences{DislikesCalls: true}
	tests := []struct {
		name        string
		cur, in     Record
		want        Record
		wantChanged []string
	}{
		{"newer replaces what it fills",
			Record{Name: "王芳", Phone: "+861", Email: "a@x", SourceUpdatedAt: t1},
			Record{Phone: "+862", SourceUpdatedAt: t2},
			Record{Name: "王芳", Phone: "+862", Email: "a@x", SourceUpdatedAt: t2},
			[]string{"phone"}},
		{"older does not overwrite",
			Record{Name: "王芳", Phone: "+862", SourceUpdatedAt: t2},
			Record{Name: "王 芳", Phone: "+861", SourceUpdatedAt: t1},
			Record{Name: "王芳", Phone: "+862", SourceUpdatedAt: t2},
			nil},
		{"older fills blanks",
			Record{Phone: "+862", SourceUpdatedAt: t2},
			Record{Email: "a@x", Preferences: prefs, SourceUpdatedAt: t1},
			Record{Phone: "+862", Email: "a@x", Preferences: prefs, SourceUpdatedAt: t2},
			[]string{"email", "preferences"}},
		{"same data again changes nothing",
			Record{Name: "王芳", Phone: "+862", Owners: []string{"s1"}, SourceUpdatedAt: t2},
			Record{Name: "王芳", Phone: "+862", Owners: []string{"s1"}, SourceUpdatedAt: t2},
			Record{Name: "王芳", Phone: "+862", Owners: []string{"s1"}, SourceUpdatedAt: t2},
			nil},
		{"seed 002: owners are a union, archive first",
			Record{Owners: []string{"s1"}, SourceUpdatedAt: t2},
			Record{Owners: []string{"s2", "s1", ""}, SourceUpdatedAt: t1},
			Record{Owners: []string{"s1", "s2"}, SourceUpdatedAt: t2},
			[]string{"owner_ids"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cur := tc.cur
			changed := Merge(&cur, tc.in)
			require.Equal(t, tc.wantChanged, changed)
			require.Equal(t, tc.want, cur)
		})
	}
}
