package rollup

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// deltas are n deltas over few values of each field, so that keys share
// prefixes and differ late.
func deltas(n int, r *rand.Rand) []Delta {
	pick := func(vs ...string) string { return vs[r.IntN(len(vs))] }
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	out := make([]Delta, n)
	for i := range out {
		out[i] = Delta{Key: Key{Tenant: pick("default", "estate"), Metric: pick("visits_due", "visits_done", "rating_sum"),
			Day: day.AddDate(0, 0, r.IntN(3)), Dims: Dims{OrgUnit: pick("", "shanghai", "shanghai-pudong"),
				PolicyID: pick("", "p-1", "p-10"), ServiceType: pick("repair", "purchase"), Channel: pick("", "phone", "sms"),
				AgentID: pick("", "a", "ab"), Aspect: pick("", "speed"), Category: pick("", "noise")}},
			N: int64(r.IntN(3)) + 1}
	}
	return out
}

// Merge's order is the one it had when it compared the tenant and the
// dimensions joined by NUL into one string.
func TestMergeOrdersAsTheJoinedKey(t *testing.T) {
	joined := func(k Key) string {
		return strings.Join([]string{k.Tenant, k.OrgUnit, k.PolicyID, k.ServiceType, k.ProductCategory, k.Channel, k.AgentID, k.Aspect, k.Category}, "\x00")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		got := Merge(deltas(300, r))
		want := slices.Clone(got)
		slices.SortFunc(want, func(a, b Delta) int {
			return cmp.Or(cmp.Compare(a.Metric, b.Metric), a.Day.Compare(b.Day), strings.Compare(joined(a.Key), joined(b.Key)))
		})
		if !slices.Equal(got, want) {
			t.Fatalf("order differs:\ngot  %v\nwant %v", got, want)
		}
		for i := 1; i < len(got); i++ {
			if compareKeys(got[i-1].Key, got[i].Key) >= 0 {
				t.Fatalf("not strictly ordered at %d: %v, %v", i, got[i-1].Key, got[i].Key)
			}
		}
	}
}

// BenchmarkMerge merges a batch's counters: 100 events' worth of deltas.
func BenchmarkMerge(b *testing.B) {
	for _, n := range []int{100, 1000} {
		ds := deltas(n, rand.New(rand.NewPCG(1, 2)))
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				Merge(ds)
			}
		})
	}
}

// Merge sums the deltas of each key, drops the sums that are zero, and
// leaves its argument as it was; AppendDiff appends to dst what Diff
// returns and keeps dst's deltas.
func TestMergeSumsPerKeyAndAppendDiffKeepsDst(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	before, after := deltas(200, r), deltas(200, r)
	want := map[Key]Delta{}
	for i, d := range slices.Concat(before, after) {
		if i < len(before) {
			d.N, d.Total = -d.N, -d.Total
		}
		s := want[d.Key]
		s.Key, s.N, s.Total = d.Key, s.N+d.N, s.Total+d.Total
		want[d.Key] = s
	}
	maps.DeleteFunc(want, func(_ Key, d Delta) bool { return d.N == 0 && d.Total == 0 })
	in := slices.Clone(before)
	if Merge(in); !slices.Equal(in, before) {
		t.Fatal("Merge changed its argument")
	}
	dst := []Delta{{Key: Key{Metric: "zz.kept"}, N: 7}}
	got := AppendDiff(dst, before, after)
	if got[0] != dst[0] {
		t.Fatalf("AppendDiff changed dst: %v", got[0])
	}
	if !slices.Equal(got[1:], Diff(before, after)) {
		t.Fatal("AppendDiff appends other deltas than Diff returns")
	}
	if len(got[1:]) != len(want) {
		t.Fatalf("%d sums, want %d", len(got[1:]), len(want))
	}
	for _, d := range got[1:] {
		if d != want[d.Key] {
			t.Fatalf("sum of %v is %d/%d, want %d/%d", d.Key, d.N, d.Total, want[d.Key].N, want[d.Key].Total)
		}
	}
}
