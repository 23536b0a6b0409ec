package ingest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
)

// Warning is a field of an accepted event that intake did not use, and
// why: the integrator sees it in the answer (IngestServiceResponse.warnings)
// and on /metrics (by field), never its value.
type Warning struct {
	Field, Reason string
}

// intakeField is a field of an event that intake fills itself, and whether
// an event has it set.
type intakeField struct {
	field string
	set   func(*eventsv1.ServiceCompleted) bool
}

// setByIntake are the fields of an event that intake fills itself: a value
// an upstream system sends there is replaced.
var setByIntake = []intakeField{
	{"event_id", func(ev *eventsv1.ServiceCompleted) bool { return ev.GetEventId() != "" }},
	{"service_id", func(ev *eventsv1.ServiceCompleted) bool { return ev.GetServiceId() != "" }},
	{"customer.id", func(ev *eventsv1.ServiceCompleted) bool { return ev.GetCustomer().GetId() != "" }},
	{"customer.upstream_tier", func(ev *eventsv1.ServiceCompleted) bool { return ev.GetCustomer().GetUpstreamTier() != "" }},
	{"customer.name_masked", func(ev *eventsv1.ServiceCompleted) bool { return ev.GetCustomer().GetNameMasked() != "" }},
	{"customer.phone_masked", func(ev *eventsv1.ServiceCompleted) bool { return ev.GetCustomer().GetPhoneMasked() != "" }},
	{"customer.email_masked", func(ev *eventsv1.ServiceCompleted) bool { return ev.GetCustomer().GetEmailMasked() != "" }},
	{"customer.has_phone", func(ev *eventsv1.ServiceCompleted) bool { return ev.GetCustomer().GetHasPhone() }},
	{"customer.has_email", func(ev *eventsv1.ServiceCompleted) bool { return ev.GetCustomer().GetHasEmail() }},
}

// KnownField tells whether a warning's field is one intake knows (set by
// Huifang, or customer.tier), rather than one the sender named.
func KnownField(f string) bool {
	return f == "customer.tier" || slices.ContainsFunc(setByIntake, func(s intakeField) bool { return s.field == f })
}

// Ignored lists the fields of a decoded event that intake does not use:
// those it sets itself (event_id, service_id, customer.id, the masked forms,
// customer.upstream_tier: the tier is customer.tier) and fields of a newer
// contract it does not know (protobuf's unknown fields, named by number).
// A JSON key it does not know was dropped by Decode: UnknownJSON names it.
func Ignored(ev *eventsv1.ServiceCompleted) []Warning {
	var out []Warning
	for _, f := range setByIntake {
		if f.set(ev) {
			out = append(out, Warning{Field: f.field, Reason: "set by Huifang; the value sent is ignored"})
		}
	}
	for _, f := range unknownProto(ev.ProtoReflect(), "") {
		out = append(out, Warning{Field: f, Reason: "not a field of huifang.events.v1.ServiceCompleted that intake knows; ignored"})
	}
	return out
}

// unknownProto names the unknown fields of m and of the messages it holds
// ("customer.#23"), each once.
func unknownProto(m protoreflect.Message, prefix string) []string {
	var out []string
	for b := m.GetUnknown(); len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			break
		}
		b = b[n:]
		if m := protowire.ConsumeFieldValue(num, typ, b); m >= 0 {
			b = b[m:]
		} else {
			b = nil
		}
		if f := fmt.Sprintf("%s#%d", prefix, num); !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil || fd.IsMap() {
			return true
		}
		name := prefix + string(fd.Name())
		if fd.IsList() {
			for i := range v.List().Len() {
				out = append(out, unknownProto(v.List().Get(i).Message(), fmt.Sprintf("%s[%d].", name, i))...)
			}
			return true
		}
		out = append(out, unknownProto(v.Message(), name+".")...)
		return true
	})
	return out
}

// UnknownJSON names the keys of a ServiceCompleted in JSON that are no
// field of it (nor of the messages it holds), as their path
// ("customer.class", "tier"): Decode drops them. Nil for a payload that is
// not a JSON object.
func UnknownJSON(data []byte) []string {
	return unknownJSON(data, (&eventsv1.ServiceCompleted{}).ProtoReflect().Descriptor(), "")
}

// UnknownWarnings are the warnings of the JSON keys UnknownJSON named.
func UnknownWarnings(keys []string) []Warning {
	out := make([]Warning, 0, len(keys))
	for _, k := range keys {
		reason := "not a field of huifang.events.v1.ServiceCompleted; ignored"
		if looksLikeTier(k) {
			reason += " (the tier or class is customer.tier)"
		}
		out = append(out, Warning{Field: k, Reason: reason})
	}
	return out
}

// looksLikeTier tells whether an unknown key's last name is one an
// upstream system may give a customer's grade under.
func looksLikeTier(path string) bool {
	name := strings.ToLower(path[strings.LastIndex(path, ".")+1:])
	return slices.Contains([]string{"tier", "class", "grade", "level", "customer_class", "customer_tier", "customerclass", "customertier"}, name)
}

func unknownJSON(data []byte, md protoreflect.MessageDescriptor, prefix string) []string {
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return nil
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []string
	for _, k := range keys {
		fd := md.Fields().ByJSONName(k)
		if fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(k))
		}
		if fd == nil {
			out = append(out, prefix+k)
			continue
		}
		sub := fd.Message()
		if sub == nil || fd.IsMap() || strings.HasPrefix(string(sub.FullName()), "google.protobuf.") {
			continue
		}
		name := prefix + string(fd.Name())
		if fd.IsList() {
			var list []json.RawMessage
			if json.Unmarshal(obj[k], &list) != nil {
				continue
			}
			for i, e := range list {
				out = append(out, unknownJSON(e, sub, fmt.Sprintf("%s[%d].", name, i))...)
			}
			continue
		}
		out = append(out, unknownJSON(obj[k], sub, name+".")...)
	}
	return out
}
