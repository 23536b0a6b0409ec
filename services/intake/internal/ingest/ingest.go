// Package ingest decodes and validates completed-service events from
// upstream systems. It does no I/O.
package ingest

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/stream"
)

// DefaultTenant is the tenant of events that name none.
const DefaultTenant = "default"

// ServiceTypes are the service types Huifang knows (DOMAIN.md: the seeds'
// purchases, installations, repairs, closed complaints, discharges, events,
// sales-centre visits and calls, vehicle deliveries and agency due dates).
func ServiceTypes() []string {
	return []string{
		"purchase", "delivery", "installation", "repair", "maintenance", "complaint_closed",
		"discharge", "community_event", "showroom_visit", "lead_call", "vehicle_delivery", "agency_due",
	}
}

// MaxFutureSkew is how far in the future a completion time may lie (clock skew).
const MaxFutureSkew = time.Hour

var (
	tenantRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	phoneRE  = regexp.MustCompile(`^\+?[0-9][0-9 -]{4,19}$`)
)

// Decode reads an ingress payload: protojson for application/json, protobuf
// binary for application/protobuf. Without a content type, a payload that
// starts with '{' is taken as JSON.
func Decode(contentType string, data []byte) (*eventsv1.ServiceCompleted, error) {
	ev := &eventsv1.ServiceCompleted{}
	ct := strings.TrimSpace(strings.ToLower(strings.SplitN(contentType, ";", 2)[0]))
	if ct == "" {
		ct = stream.ContentTypeProtobuf
		if trimmed := strings.TrimSpace(string(data)); strings.HasPrefix(trimmed, "{") {
			ct = stream.ContentTypeJSON
		}
	}
	switch ct {
	case stream.ContentTypeJSON:
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, ev); err != nil {
			return nil, invalid.New("payload", "must be a ServiceCompleted in JSON: "+err.Error())
		}
	case stream.ContentTypeProtobuf:
		if err := proto.Unmarshal(data, ev); err != nil {
			return nil, invalid.New("payload", "must be a ServiceCompleted in protobuf: "+err.Error())
		}
	default:
		return nil, invalid.New("Content-Type", fmt.Sprintf("must be %s or %s, not %q", stream.ContentTypeJSON, stream.ContentTypeProtobuf, contentType))
	}
	return ev, nil
}

// Normalize fills defaults (the tenant) and trims identifiers in place.
func Normalize(ev *eventsv1.ServiceCompleted) {
	ev.TenantId = strings.TrimSpace(ev.TenantId)
	if ev.TenantId == "" {
		ev.TenantId = DefaultTenant
	}
	ev.SourceSystem = strings.TrimSpace(ev.SourceSystem)
	ev.SourceEventId = strings.TrimSpace(ev.SourceEventId)
	ev.ServiceType = strings.TrimSpace(ev.ServiceType)
	if c := ev.Customer; c != nil {
		c.ExternalId = strings.TrimSpace(c.ExternalId)
		c.Phone = strings.TrimSpace(c.Phone)
		c.Email = strings.TrimSpace(c.Email)
		c.Name = strings.TrimSpace(c.Name)
	}
}

// Validate checks a normalized event against intake's rules and returns an
// *invalid.Error naming every field that breaks one.
func Validate(ev *eventsv1.ServiceCompleted, now time.Time) error {
	var l invalid.List
	if !tenantRE.MatchString(ev.TenantId) {
		l.Add("tenant_id", "must be 1–63 lowercase letters, digits, '-' or '_'")
	}
	if ev.SourceSystem == "" {
		l.Add("source_system", "is required: the upstream system that sent the event")
	}
	if ev.SourceEventId == "" {
		l.Add("source_event_id", "is required: the upstream system's id of the event, used to drop resends")
	}
	types := ServiceTypes()
	switch {
	case ev.ServiceType == "":
		l.Add("service_type", "is required; one of "+strings.Join(types, ", "))
	case !slices.Contains(types, ev.ServiceType):
		l.Add("service_type", fmt.Sprintf("unknown service type %q; one of %s", ev.ServiceType, strings.Join(types, ", ")))
	}
	switch {
	case ev.CompletedAt == nil:
		l.Add("completed_at", "is required: when the service was completed (RFC 3339)")
	case ev.CompletedAt.CheckValid() != nil:
		l.Add("completed_at", "must be a valid timestamp")
	case ev.CompletedAt.AsTime().After(now.Add(MaxFutureSkew)):
		l.Add("completed_at", "must not lie in the future")
	}
	c := ev.Customer
	if c == nil {
		l.Add("customer", "is required")
	} else {
		if c.ExternalId == "" {
			l.Add("customer.external_id", "is required: the upstream system's id of the customer")
		}
		if c.Phone == "" && c.Email == "" {
			l.Add("customer.phone", "a phone or an email is required to follow the customer up")
		}
		if c.Phone != "" && !phoneRE.MatchString(c.Phone) {
			l.Add("customer.phone", "must be 5–20 digits, optionally with a leading '+'")
		}
		if c.Email != "" && (!strings.Contains(c.Email, "@") || strings.ContainsAny(c.Email, " \t")) {
			l.Add("customer.email", "must be an email address")
		}
	}
	if ev.AmountMinor < 0 {
		l.Add("amount_minor", "must not be negative")
	}
	return l.Err()
}

// Parse decodes, normalizes and validates a payload.
func Parse(contentType string, data []byte, now time.Time) (*eventsv1.ServiceCompleted, error) {
	ev, err := Decode(contentType, data)
	if err != nil {
		return nil, err
	}
	Normalize(ev)
	if err := Validate(ev, now); err != nil {
		return ev, err
	}
	return ev, nil
}
