package tenant

import (
	"testing"

	"github.com/huifang/huifang/pkg/invalid"
)

type named struct{ id string }

func (n named) GetTenantId() string { return n.id }

func TestOrDefaultsBlank(t *testing.T) {
	for in, want := range map[string]string{"": Default, "  ": Default, " acme ": "acme", "acme": "acme"} {
		if got := Or(in); got != want {
			t.Errorf("Or(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseNamesTheField(t *testing.T) {
	cases := []struct {
		in      string
		want    string
		invalid bool
	}{
		{"", Default, false},
		{"acme-01", "acme-01", false},
		{"a_b", "a_b", false},
		{"Acme", "Acme", true},
		{"-acme", "-acme", true},
		{"*", "*", true},
		{"acme corp", "acme corp", true},
	}
	for _, c := range cases {
		var bad invalid.List
		got := Parse(&bad, "req.tenant_id", c.in)
		if got != c.want {
			t.Errorf("Parse(%q) = %q, want %q", c.in, got, c.want)
		}
		err := bad.Err()
		if (err != nil) != c.invalid {
			t.Errorf("Parse(%q): err = %v, want invalid=%v", c.in, err, c.invalid)
			continue
		}
		if err != nil {
			e, _ := invalid.As(err)
			if e.Violations[0].Field != "req.tenant_id" || e.Violations[0].Rule != Rule {
				t.Errorf("Parse(%q): violation %+v", c.in, e.Violations[0])
			}
		}
	}
	if Check("tenant_id", "ok") != nil || Check("tenant_id", "NO") == nil {
		t.Error("Check disagrees with Parse")
	}
}

func TestOf(t *testing.T) {
	if got := Of(named{"acme"}); got != "acme" {
		t.Errorf("Of = %q", got)
	}
	if got := Of(named{""}); got != Default {
		t.Errorf("Of(blank) = %q", got)
	}
	if got := Of(42); got != Default {
		t.Errorf("Of(not a carrier) = %q", got)
	}
}
