package message

import (
	"fmt"
	"strings"
	"time"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
)

// Kinds of templates besides a visit's message (Kind empty).
const (
	// KindReminder is the SMS reminding a customer of an appointment.
	KindReminder = "reminder"
	// KindScript is the call script an agent reads.
	KindScript = "script"
	// AnyServiceType keys a tenant's reminder or script for every service type.
	AnyServiceType = "*"
)

// DefaultReminder is the built-in reminder SMS: a greeting, the
// appointment's time in the customer's zone and how to move it.
func DefaultReminder(tenant string) Template {
	return Template{Tenant: tenant, Kind: KindReminder, ServiceType: AnyServiceType, Channel: typesv1.Channel_CHANNEL_SMS,
		Greeting: "{name}您好！", Body: "温馨提示：我们已与您约定于{appointment_time}上门回访，届时工作人员将佩戴工作证上门。如需改期，请与我们联系。"}
}

// DefaultScript is the built-in call script (seed 004: confirm identity,
// introduce, state the purpose, ask whether it is convenient; thank). It
// names no service type or org unit: those are codes (repair,
// shanghai-pudong) that a customer should not hear; a tenant's script per
// service type says them in its own words.
func DefaultScript(tenant string) Template {
	return Template{Tenant: tenant, Kind: KindScript, ServiceType: AnyServiceType,
		Greeting: "您好，请问是{name}吗？我是回访专员{agent}。",
		Body:     "今天联系您，是想了解您对我们最近为您提供的服务的意见和满意度，大约占用您几分钟时间，请问现在方便吗？",
		Footer:   "感谢您的配合与支持，祝您生活愉快，再见！"}
}

// NormalizeKind trims a reminder or script template and checks it: a
// reminder is an SMS with a greeting and a body, a script has a greeting
// (identity and introduction), a body (the purpose) and a footer (the
// thanks); placeholders well formed. ServiceType defaults to "*". Fields
// are named as in UpsertTemplateRequest.
func NormalizeKind(t *Template) error {
	t.Kind, t.ServiceType = strings.TrimSpace(t.Kind), strings.TrimSpace(t.ServiceType)
	if t.ServiceType == "" {
		t.ServiceType = AnyServiceType
	}
	t.PolicyID = ""
	t.Subject, t.Greeting, t.Body, t.Footer = strings.TrimSpace(t.Subject), strings.TrimSpace(t.Greeting), strings.TrimSpace(t.Body), strings.TrimSpace(t.Footer)
	var bad invalid.List
	switch t.Kind {
	case KindReminder:
		if t.Channel == typesv1.Channel_CHANNEL_UNSPECIFIED {
			t.Channel = typesv1.Channel_CHANNEL_SMS
		}
		if t.Channel != typesv1.Channel_CHANNEL_SMS {
			bad.Add("template.channel", "a reminder is an SMS: CHANNEL_SMS or unset")
		}
		if t.Greeting == "" {
			bad.Add("template.greeting", "is required: an SMS starts with a greeting")
		}
	case KindScript:
		if t.Channel != typesv1.Channel_CHANNEL_UNSPECIFIED {
			bad.Add("template.channel", "must be unset for a script")
		}
		if t.Greeting == "" {
			bad.Add("template.greeting", "is required: the script starts by confirming the customer's identity and introducing the agent (seed 004)")
		}
		if t.Footer == "" {
			bad.Add("template.footer", "is required: the script ends by thanking the customer")
		}
	default:
		bad.Add("template.kind", "must be empty (a visit's message), \"reminder\" or \"script\"")
	}
	if t.Preset != "" {
		bad.Add("template.preset", "is for a visit's SMS only")
	}
	if t.Body == "" {
		bad.Add("template.body", "is required")
	}
	for field, text := range map[string]string{"template.subject": t.Subject, "template.greeting": t.Greeting, "template.body": t.Body, "template.footer": t.Footer} {
		if _, err := placeholders(text); err != nil {
			bad.Add(field, err.Error())
		}
	}
	return bad.Err()
}

// PickKind returns the template of kind for serviceType: the tenant's for
// the service type, else the tenant's for any ("*"), else the built-in one;
// tenant reports whether it is the tenant's. stored holds the tenant's
// stored ones of the kind.
func PickKind(stored []Template, tenant, kind, serviceType string) (t Template, own bool) {
	for _, st := range []string{serviceType, AnyServiceType} {
		for _, t := range stored {
			if t.Kind == kind && t.ServiceType == st {
				return t, true
			}
		}
	}
	if kind == KindScript {
		return DefaultScript(tenant), false
	}
	return DefaultReminder(tenant), false
}

// Script is a rendered call script.
type Script struct {
	Greeting, Body, Closing string
}

// RenderScript fills a script template's parts with vars; a placeholder
// without a value is an error naming it.
func RenderScript(t Template, vars map[string]string) (Script, error) {
	var s Script
	for _, part := range []struct {
		text string
		out  *string
	}{{t.Greeting, &s.Greeting}, {t.Body, &s.Body}, {t.Footer, &s.Closing}} {
		_, text, err := Render(Template{Body: part.text}, vars)
		if err != nil {
			return Script{}, err
		}
		*part.out = text
	}
	return s, nil
}

// AppointmentTime is how a reminder shows an appointment's window, in the
// customer's zone loc: "3月11日 10:00-11:30" (the end's date too when it
// ends another day).
func AppointmentTime(start, end time.Time, loc *time.Location) string {
	s, e := start.In(loc), end.In(loc)
	out := fmt.Sprintf("%d月%d日 %s-", int(s.Month()), s.Day(), s.Format("15:04"))
	if e.YearDay() != s.YearDay() || e.Year() != s.Year() {
		out += fmt.Sprintf("%d月%d日 ", int(e.Month()), e.Day())
	}
	return out + e.Format("15:04")
}
