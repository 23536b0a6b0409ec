package policy

import (
	"encoding/json"
	"testing"

	"github.com/huifang/huifang/pkg/invalid"
)

// FuzzParseDuration: whatever a policy file or stored spec writes as a
// duration ("3d", "2w", "-14d", "1d12h", a number of nanoseconds), it is
// read or refused with an error; never a panic. A duration read is written
// back (FormatDuration) as text that reads as the same duration.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"3d", "2w", "36h", "-14d", "1d12h", "90m", "1.5d", "0", "", "  7d ", "d", "1x", "1..5d",
		"99999999999999999999w", "106751d23h47m16.854775807s", "-106751d23h47m16.854775808s", "1e3d", "9223372036854775807ns"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		back, err := ParseDuration(FormatDuration(d))
		if err != nil || back != d {
			t.Fatalf("%q read as %d, written %q, read back %d (%v)", s, d, FormatDuration(d), back, err)
		}
	})
}

// FuzzPolicyJSON: whatever a policy spec in JSON holds (a pack's file, a
// stored spec), it decodes or is refused with an error, and a decoded
// policy is valid or refused as bad input naming fields and rules; never a
// panic. A valid policy comes back the same through its JSON.
func FuzzPolicyJSON(f *testing.F) {
	for _, s := range []string{
		`{"name":"instant","trigger":{"service_types":["repair"]},"steps":[{"offset":"0s","channel":"CHANNEL_PHONE","sample_rate":1}]}`,
		`{"name":"series","trigger":{"service_types":["lead_call"]},"stop":{"answered":true,"after":"90d"},"steps":[{"channel":"phone","sample_rate":0.5,"every":"7d","max_occurrences":4}]}`,
		`{"name":"seasons","trigger":{"service_types":["delivery"]},"steps":[{"channel":"CHANNEL_PHONE","sample_rate":1,"seasons":[{"name":"peak","from":"11-01","to":"02-28","every":"1w"}]}]}`,
		`{"name":"anchor","trigger":{"service_types":["purchase"]},"steps":[{"anchor":{"from":"warranty_until","later_of":"attributes.x"},"offset":"-14d","channel":2,"sample_rate":1}]}`,
		`{"name":"","trigger":{},"steps":[]}`,
		`{"name":"x","trigger":{"service_types":["repair"]},"steps":[{"channel":"fax","every":"1m"}]}`,
		`{"steps":[{"offset":99999999999999999999}]}`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Policy
		if json.Unmarshal(b, &p) != nil {
			return
		}
		if err := Validate(p); err != nil {
			bad, ok := invalid.As(err)
			if !ok || len(bad.Violations) == 0 {
				t.Fatalf("%T %v: want bad input naming fields", err, err)
			}
			for _, v := range bad.Violations {
				if v.Field == "" || v.Rule == "" {
					t.Fatalf("violation %+v: want a field and a rule", v)
				}
			}
			return
		}
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("a valid policy does not encode: %v", err)
		}
		var back Policy
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("a valid policy does not decode from its JSON %s: %v", out, err)
		}
		if err := Validate(back); err != nil {
			t.Fatalf("a valid policy, through its JSON %s, is refused: %v", out, err)
		}
	})
}
