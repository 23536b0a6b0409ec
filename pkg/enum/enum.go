// Package enum turns the values of Huifang's protobuf enums into the short
// lower-case names used in configuration, SQL columns, JSON and messages
// (typesv1.Channel_CHANNEL_PHONE is "phone") and back.
//
// Every enum of the contract starts with a zero value named
// <PREFIX>_UNSPECIFIED (buf lint's rule); the short name of a value is its
// name without that prefix, in lower case.
package enum

import (
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Value is a generated protobuf enum type.
type Value interface {
	~int32
	protoreflect.Enum
}

// prefix returns the common prefix of d's value names ("CHANNEL_").
func prefix(d protoreflect.EnumDescriptor) string {
	if v := d.Values().ByNumber(0); v != nil {
		if p, ok := strings.CutSuffix(string(v.Name()), "UNSPECIFIED"); ok {
			return p
		}
	}
	return ""
}

// Name returns the short name of v: "phone" for CHANNEL_PHONE, "" for the
// unspecified value, and the number for a value the descriptor does not know.
func Name[E Value](v E) string {
	d := v.Descriptor()
	ev := d.Values().ByNumber(protoreflect.EnumNumber(v))
	if ev == nil {
		return strconv.Itoa(int(v))
	}
	if v == 0 {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(string(ev.Name()), prefix(d)))
}

// Parse reads a value by its short name ("phone") or its full name
// ("CHANNEL_PHONE"), in any case and without surrounding blanks. The
// unspecified value is not a name: Parse reports false for it.
func Parse[E Value](name string) (E, bool) {
	var zero E
	d := zero.Descriptor()
	n := strings.ToUpper(strings.TrimSpace(name))
	if n == "" {
		return zero, false
	}
	p := prefix(d)
	ev := d.Values().ByName(protoreflect.Name(p + strings.TrimPrefix(n, p)))
	if ev == nil {
		ev = d.Values().ByName(protoreflect.Name(n)) // an enum whose values lack the prefix
	}
	if ev == nil || ev.Number() == 0 {
		return zero, false
	}
	return E(ev.Number()), true
}

// Names returns the short names of every specified value of E, in number order.
func Names[E Value]() []string {
	var zero E
	d := zero.Descriptor()
	vals := d.Values()
	out := make([]string, 0, vals.Len())
	for i := range vals.Len() {
		if v := vals.Get(i); v.Number() != 0 {
			out = append(out, Name(E(v.Number())))
		}
	}
	return out
}

// Values returns every specified value of E, in number order: every
// channel, for instance, which an erased customer is opted out of.
func Values[E Value]() []E {
	var zero E
	vals := zero.Descriptor().Values()
	out := make([]E, 0, vals.Len())
	for i := range vals.Len() {
		if v := vals.Get(i); v.Number() != 0 {
			out = append(out, E(v.Number()))
		}
	}
	return out
}
