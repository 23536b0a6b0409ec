// Package message holds the automatic follow-ups (SMS, email): their
// templates (seed 002's format), rendering with a customer's variables, and
// the state of each message through its tries and the provider's receipt.
// It does no I/O.
package message

import (
	"fmt"
	"slices"
	"strings"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
)

// AnyPolicy is the policy id of a tenant's default template.
const AnyPolicy = "*"

// DefaultSMSFooter ends a seed-002 SMS: the project's name, the booking
// number and the advisor's name.
const DefaultSMSFooter = "【{project}】预约号：{booking_number}，顾问：{advisor}"

// Preset002 is the preset of a template in seed 002's real-estate SMS
// format: its footer names the project, the booking number and the advisor.
// Only templates that ask for it have that footer: a hospital's or a car
// dealer's customers have no project or booking number.
const Preset002 = "002"

// seed002Vars are the variables a seed-002 SMS footer must name.
var seed002Vars = []string{"project", "booking_number", "advisor"}

// Template is the text of a policy's automatic message.
type Template struct {
	Tenant   string
	PolicyID string
	Channel  typesv1.Channel
	Subject  string
	Greeting string
	Body     string
	Footer   string
	// Preset is Preset002 for a seed-002 SMS, else empty.
	Preset string
	// Kind is empty for a visit's message, KindReminder or KindScript
	// (kinds.go); those are keyed by ServiceType, not PolicyID.
	Kind        string
	ServiceType string
}

// Default returns the built-in template of a channel, used when the tenant
// stored none for the policy: a greeting and a thank-you that need no
// variable but the customer's name. It has no seed-002 footer, since a
// customer without the project's variables could not be sent it; a
// tenant's SMS templates have one when they ask for it (Preset002).
func Default(tenant string, c typesv1.Channel) Template {
	t := Template{Tenant: tenant, PolicyID: AnyPolicy, Channel: c, Greeting: "{name}您好！",
		Body: "感谢您选择我们的服务，如对本次服务有任何意见，欢迎随时联系我们。"}
	if c == typesv1.Channel_CHANNEL_EMAIL {
		t.Subject = "服务回访"
	}
	return t
}

// Normalize trims t and checks it: the channel is SMS or email, the body is
// set, every placeholder is well formed, an SMS has a greeting; the preset
// is empty or Preset002, which makes an SMS end with a footer naming the
// project, the booking number and the advisor (seed 002), DefaultSMSFooter
// when none is given. Without a preset the footer is free. Fields are named
// as in UpsertTemplateRequest.
func Normalize(t *Template) error {
	t.PolicyID = strings.TrimSpace(t.PolicyID)
	if t.PolicyID == "" {
		t.PolicyID = AnyPolicy
	}
	t.Subject, t.Greeting, t.Body, t.Footer = strings.TrimSpace(t.Subject), strings.TrimSpace(t.Greeting), strings.TrimSpace(t.Body), strings.TrimSpace(t.Footer)
	t.Preset = strings.TrimSpace(t.Preset)
	var bad invalid.List
	if t.Channel != typesv1.Channel_CHANNEL_SMS && t.Channel != typesv1.Channel_CHANNEL_EMAIL {
		bad.Add("template.channel", "must be CHANNEL_SMS or CHANNEL_EMAIL")
	}
	if t.Body == "" {
		bad.Add("template.body", "is required")
	}
	switch {
	case t.Preset != "" && t.Preset != Preset002:
		bad.Add("template.preset", fmt.Sprintf("must be empty or %q (seed 002's real-estate SMS format)", Preset002))
	case t.Preset == Preset002 && t.Channel != typesv1.Channel_CHANNEL_SMS:
		bad.Add("template.preset", "\"002\" is a format of SMS templates: leave it empty for "+t.Channel.String())
	}
	if t.Channel == typesv1.Channel_CHANNEL_SMS {
		if t.Greeting == "" {
			bad.Add("template.greeting", "is required: an SMS starts with a greeting")
		}
		if t.Preset == Preset002 {
			if t.Footer == "" {
				t.Footer = DefaultSMSFooter
			}
			names, _ := placeholders(t.Footer)
			for _, v := range seed002Vars {
				if !slices.Contains(names, v) {
					bad.Add("template.footer", fmt.Sprintf("must name {%s}: with preset 002 an SMS ends with the project, booking number and advisor (seed 002)", v))
				}
			}
		}
	}
	for field, text := range map[string]string{"template.subject": t.Subject, "template.greeting": t.Greeting, "template.body": t.Body, "template.footer": t.Footer} {
		if _, err := placeholders(text); err != nil {
			bad.Add(field, err.Error())
		}
	}
	return bad.Err()
}

// Render fills the placeholders of t with vars and returns the subject and
// the text: greeting, body and footer, in that order. A placeholder
// without a value is an error naming it.
func Render(t Template, vars map[string]string) (subject, text string, err error) {
	var missing []string
	fill := func(s string) string {
		var b strings.Builder
		for {
			i := strings.IndexByte(s, '{')
			if i < 0 {
				b.WriteString(s)
				return b.String()
			}
			j := strings.IndexByte(s[i:], '}')
			if j < 0 {
				b.WriteString(s)
				return b.String()
			}
			name := s[i+1 : i+j]
			b.WriteString(s[:i])
			if v, ok := vars[name]; ok && v != "" {
				b.WriteString(v)
			} else if !slices.Contains(missing, name) {
				missing = append(missing, name)
			}
			s = s[i+j+1:]
		}
	}
	subject = fill(t.Subject)
	parts := make([]string, 0, 3)
	for _, p := range []string{t.Greeting, t.Body, t.Footer} {
		if p != "" {
			parts = append(parts, fill(p))
		}
	}
	if len(missing) > 0 {
		return "", "", fmt.Errorf("message: no value for %s", strings.Join(missing, ", "))
	}
	return subject, strings.Join(parts, ""), nil
}

// placeholders returns the names of the {name} placeholders in s.
func placeholders(s string) ([]string, error) {
	var names []string
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			if strings.IndexByte(s, '}') >= 0 {
				return nil, fmt.Errorf("has a '}' without '{'")
			}
			return names, nil
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("has a '{' without '}'")
		}
		name := s[i+1 : i+j]
		if name == "" || strings.ContainsFunc(name, func(r rune) bool {
			return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}) {
			return nil, fmt.Errorf("placeholder {%s} must be letters, digits and '_'", name)
		}
		names = append(names, name)
		s = s[i+j+1:]
	}
}

// Builtins are the values every message may use.
type Builtins struct {
	Name        string
	CustomerID  string
	VisitID     string
	OrgUnit     string
	ServiceType string
}

// NamePlaceholder stands for the customer's name in the text dispatch
// keeps: the name is filled in (Greet) only at the moment of sending, from
// intake, so that no stored message holds it.
const NamePlaceholder = "{name}"

// Greet fills the customer's name into a kept text.
func Greet(text, name string) string { return strings.ReplaceAll(text, NamePlaceholder, name) }

// Vars are the values a customer's message may use: the built-ins (name,
// customer_id, visit_id, org_unit, service_type) under the customer's own
// variables, which win.
func Vars(b Builtins, own map[string]string) map[string]string {
	vars := map[string]string{
		"name": b.Name, "customer_id": b.CustomerID, "visit_id": b.VisitID, "org_unit": b.OrgUnit, "service_type": b.ServiceType,
	}
	for k, v := range own {
		vars[k] = v
	}
	return vars
}

// Pick returns the template a message of the tenant's policy uses on
// channel c: the policy's own, else the tenant's default ("*"), else the
// built-in one. stored holds the tenant's stored ones of the policy and
// of "*".
func Pick(stored []Template, tenant, policyID string, c typesv1.Channel) Template {
	for _, id := range []string{policyID, AnyPolicy} {
		for _, t := range stored {
			if t.PolicyID == id && t.Channel == c {
				return t
			}
		}
	}
	return Default(tenant, c)
}
