package enum_test

import (
	"slices"
	"testing"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/huifang/huifang/pkg/enum"
)

// annotations.FieldBehavior is a generated enum shaped like Huifang's
// (FIELD_BEHAVIOR_UNSPECIFIED = 0, then FIELD_BEHAVIOR_OPTIONAL, ...); the
// tests of Huifang's own enums live with the services that use them.
func TestName(t *testing.T) {
	cases := map[annotations.FieldBehavior]string{
		annotations.FieldBehavior_FIELD_BEHAVIOR_UNSPECIFIED: "",
		annotations.FieldBehavior_OPTIONAL:                   "optional",
		annotations.FieldBehavior_OUTPUT_ONLY:                "output_only",
		annotations.FieldBehavior(999):                       "999",
	}
	for v, want := range cases {
		if got := enum.Name(v); got != want {
			t.Errorf("Name(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestParse(t *testing.T) {
	cases := []struct {
		in   string
		want annotations.FieldBehavior
		ok   bool
	}{
		{"required", annotations.FieldBehavior_REQUIRED, true},
		{" Output_Only ", annotations.FieldBehavior_OUTPUT_ONLY, true},
		{"", 0, false},
		{"unspecified", 0, false},
		{"FIELD_BEHAVIOR_UNSPECIFIED", 0, false},
		{"sometimes", 0, false},
	}
	for _, c := range cases {
		got, ok := enum.Parse[annotations.FieldBehavior](c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("Parse(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	// The short name of every value parses back to it.
	for _, n := range enum.Names[annotations.FieldBehavior]() {
		v, ok := enum.Parse[annotations.FieldBehavior](n)
		if !ok || enum.Name(v) != n {
			t.Errorf("round trip of %q: %v, %v", n, v, ok)
		}
	}
}

func TestFullNamesParseWhenPrefixed(t *testing.T) {
	// An enum whose values carry the prefix parses both forms; structpb's
	// NullValue has no UNSPECIFIED value, so no prefix and no names.
	if _, ok := enum.Parse[structpb.NullValue]("NULL_VALUE"); ok {
		t.Error("the zero value must not parse")
	}
	if got := enum.Names[structpb.NullValue](); len(got) != 0 {
		t.Errorf("Names = %v", got)
	}
	if !slices.Contains(enum.Names[annotations.FieldBehavior](), "identifier") {
		t.Errorf("Names = %v", enum.Names[annotations.FieldBehavior]())
	}
}

func TestValues(t *testing.T) {
	got := enum.Values[annotations.FieldBehavior]()
	if len(got) != len(enum.Names[annotations.FieldBehavior]()) || got[0] != annotations.FieldBehavior_OPTIONAL || slices.Contains(got, 0) {
		t.Fatalf("Values = %v: every specified value in number order, not the unspecified one", got)
	}
	for i, v := range got {
		if enum.Name(v) != enum.Names[annotations.FieldBehavior]()[i] {
			t.Fatalf("Values()[%d] = %v, Names()[%d] = %q", i, v, i, enum.Names[annotations.FieldBehavior]()[i])
		}
	}
}
