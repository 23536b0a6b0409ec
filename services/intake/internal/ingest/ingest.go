// Package ingest holds intake's rules for what comes in from upstream
// systems: decoding a completed-service event (JSON or protobuf), its
// normalization and validation, the customer records of an import, the
// service types a tenant may use, when two events are the same one, and
// refused inputs and their replay. It does no I/O.
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
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/tier"
)

// ServiceTypes are the service types Huifang knows (DOMAIN.md: the seeds'
// purchases, installations, repairs, closed complaints, discharges, events,
// sales-centre visits, calls and referrals, vehicle deliveries and agency
// due dates): every type a policy pack triggers on is one of them, so a
// tenant that loads a pack needs to register none (referral: seed 002's
// customers introduced by the company's or a government department's
// leaders, the real-estate pack's referred VIPs; move_in and
// incident_closed: seed 000's property follow-ups after move-in and after
// incidents; checkup: the hospital's later check-ups; parts_arrived,
// recall and campaign: the car dealer's parts-arrived, recall-booking and
// campaign (service festival, promotion, loyalty event) programs).
func ServiceTypes() []string {
	return []string{
		"purchase", "delivery", "installation", "repair", "maintenance", "complaint_closed",
		"discharge", "community_event", "showroom_visit", "lead_call", "referral", "vehicle_delivery", "agency_due",
		"move_in", "incident_closed", "checkup", "parts_arrived", "recall", "campaign",
	}
}

// InternalServiceTypes are the service types Huifang makes itself, from its
// own events rather than from an upstream system's: a complaint resolved in
// feedback (complaint_resolved), a visit dispatch could not make
// (visit_unreachable), a round feedback asked for (followup). A tenant cannot
// register them and an upstream event cannot name them: one that did would
// plan a complaint's confirmation without a complaint, or a second invitation
// without a failed visit.
func InternalServiceTypes() []string {
	return []string{"complaint_resolved", "visit_unreachable", "followup"}
}

// internalReason says why an internal service type is refused.
func internalReason(name string) string {
	return fmt.Sprintf("%q is a service type Huifang makes itself (internal: %s), not one an upstream system sends",
		name, strings.Join(InternalServiceTypes(), ", "))
}

// MaxFutureSkew is how far in the future a completion time may lie (clock skew).
const MaxFutureSkew = time.Hour

var (
	phoneRE = regexp.MustCompile(`^\+?[0-9][0-9 -]{4,19}$`)
	vinRE   = regexp.MustCompile(`^[A-HJ-NPR-Z0-9]{17}$`)
	langRE  = regexp.MustCompile(`^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$`)
	typeRE  = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
)

// Decode reads an ingress payload: protojson for application/json, protobuf
// binary for application/protobuf. Without a content type, a payload that
// starts with '{' is taken as JSON.
func Decode(contentType string, data []byte) (*eventsv1.ServiceCompleted, error) {
	ev := &eventsv1.ServiceCompleted{}
	switch ContentType(contentType, data) {
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

// DecodeUnknown is Decode, with the JSON keys it dropped (UnknownJSON; nil
// for protobuf). A JSON payload is decoded strictly first: one that holds
// no unknown key, the usual case, is then decoded once and not walked
// again to look for them.
func DecodeUnknown(contentType string, data []byte) (*eventsv1.ServiceCompleted, []string, error) {
	if ContentType(contentType, data) == stream.ContentTypeJSON {
		ev := &eventsv1.ServiceCompleted{}
		if protojson.Unmarshal(data, ev) == nil {
			return ev, nil, nil
		}
	}
	ev, err := Decode(contentType, data)
	if err != nil {
		return nil, nil, err
	}
	var unknown []string
	if ContentType(contentType, data) == stream.ContentTypeJSON {
		unknown = UnknownJSON(data)
	}
	return ev, unknown, nil
}

// ContentType is the media type a payload is read as: the given one without
// parameters, lower-cased; without one, JSON for a payload that starts
// with '{', else protobuf.
func ContentType(contentType string, data []byte) string {
	ct := strings.TrimSpace(strings.ToLower(strings.SplitN(contentType, ";", 2)[0]))
	if ct != "" {
		return ct
	}
	if strings.HasPrefix(strings.TrimSpace(string(data)), "{") {
		return stream.ContentTypeJSON
	}
	return stream.ContentTypeProtobuf
}

// Normalize fills defaults (the tenant) and trims identifiers in place.
func Normalize(ev *eventsv1.ServiceCompleted) {
	ev.TenantId = tenant.Or(ev.TenantId)
	ev.SourceSystem = strings.TrimSpace(ev.SourceSystem)
	ev.SourceEventId = strings.TrimSpace(ev.SourceEventId)
	ev.ServiceType = strings.TrimSpace(ev.ServiceType)
	if c := ev.Customer; c != nil {
		NormalizeCustomer(c)
	}
	if v := ev.Vehicle; v != nil {
		v.Vin = strings.ToUpper(strings.TrimSpace(v.Vin))
		v.Plate = strings.TrimSpace(v.Plate)
	}
	if c := ev.Complaint; c != nil {
		c.Reference = strings.TrimSpace(c.Reference)
	}
}

// NormalizeCustomer trims a customer record in place.
func NormalizeCustomer(c *typesv1.Customer) {
	c.ExternalId = strings.TrimSpace(c.ExternalId)
	c.Phone = strings.TrimSpace(c.Phone)
	c.Email = strings.TrimSpace(c.Email)
	c.Name = strings.TrimSpace(c.Name)
	c.Kind = strings.TrimSpace(strings.ToLower(c.Kind))
	c.ReferredBy = strings.TrimSpace(c.ReferredBy)
	c.OrgUnit = strings.TrimSpace(c.OrgUnit)
	c.Tier = tier.Canonical(c.Tier)
	for i := range c.OwnerIds {
		c.OwnerIds[i] = strings.TrimSpace(c.OwnerIds[i])
	}
}

// ValidateTypeName checks the name of a tenant-defined service type.
func ValidateTypeName(name string) error {
	switch {
	case !typeRE.MatchString(name):
		return invalid.New("name", "must be 1–63 lowercase letters, digits and '_', starting with a letter")
	case slices.Contains(ServiceTypes(), name):
		return invalid.New("name", fmt.Sprintf("%q is a built-in service type", name))
	case slices.Contains(InternalServiceTypes(), name):
		return invalid.New("name", internalReason(name)+"; register another name")
	}
	return nil
}

// Validate checks a normalized event against intake's rules and returns an
// *invalid.Error naming every field that breaks one. extra are the tenant's
// own service types, allowed beside the built-in ones.
func Validate(ev *eventsv1.ServiceCompleted, now time.Time, extra ...string) error {
	var l invalid.List
	tenant.Parse(&l, "tenant_id", ev.TenantId)
	if ev.SourceSystem == "" {
		l.Add("source_system", "is required: the upstream system that sent the event")
	}
	if ev.SourceEventId == "" {
		l.Add("source_event_id", "is required: the upstream system's id of the event, used to drop resends")
	}
	types := append(ServiceTypes(), slices.DeleteFunc(slices.Clone(extra), func(t string) bool { return slices.Contains(InternalServiceTypes(), t) })...)
	switch {
	case ev.ServiceType == "":
		l.Add("service_type", "is required; one of "+strings.Join(types, ", "))
	case slices.Contains(InternalServiceTypes(), ev.ServiceType):
		// Even when a tenant registered it before registering it was refused.
		l.Add("service_type", internalReason(ev.ServiceType))
	case !slices.Contains(types, ev.ServiceType):
		l.Add("service_type", fmt.Sprintf("unknown service type %q; one of %s (or register it with RegisterServiceType)", ev.ServiceType, strings.Join(types, ", ")))
	}
	switch {
	case ev.CompletedAt == nil:
		l.Add("completed_at", "is required: when the service was completed (RFC 3339)")
	case ev.CompletedAt.CheckValid() != nil:
		l.Add("completed_at", "must be a valid timestamp")
	case ev.CompletedAt.AsTime().After(now.Add(MaxFutureSkew)):
		l.Add("completed_at", "must not lie in the future")
	}
	if ev.SourceUpdatedAt != nil {
		switch {
		case ev.SourceUpdatedAt.CheckValid() != nil:
			l.Add("source_updated_at", "must be a valid timestamp")
		case ev.SourceUpdatedAt.AsTime().After(now.Add(MaxFutureSkew)):
			l.Add("source_updated_at", "must not lie in the future")
		}
	}
	if ev.Customer == nil {
		l.Add("customer", "is required")
	} else {
		ValidateCustomer(&l, "customer", ev.Customer)
	}
	if ev.AmountMinor < 0 {
		l.Add("amount_minor", "must not be negative")
	}
	if ev.ClaimAmountMinor < 0 {
		l.Add("claim_amount_minor", "must not be negative")
	}
	if p := ev.Product; p != nil && p.WarrantyUntil != nil && p.WarrantyUntil.CheckValid() != nil {
		l.Add("product.warranty_until", "must be a valid timestamp")
	}
	if v := ev.Vehicle; v != nil {
		if v.MileageKm < 0 {
			l.Add("vehicle.mileage_km", "must not be negative")
		}
		if v.Vin != "" && !vinRE.MatchString(v.Vin) {
			l.Add("vehicle.vin", "must be 17 letters and digits (no I, O or Q)")
		}
	}
	if c := ev.Complaint; c != nil {
		if ev.ServiceType != "complaint_closed" {
			l.Add("complaint", "is only for service_type complaint_closed")
		}
		if _, ok := typesv1.Severity_name[int32(c.Severity)]; !ok {
			l.Add("complaint.severity", "must be SEVERITY_GENERAL, SEVERITY_URGENT or SEVERITY_MAJOR")
		}
	}
	return l.Err()
}

// ValidateCustomer checks a normalized customer record; prefix is its path
// ("customer" in an event, "records[3].customer" in an import).
func ValidateCustomer(l *invalid.List, prefix string, c *typesv1.Customer) {
	if c.ExternalId == "" {
		l.Add(prefix+".external_id", "is required: the upstream system's id of the customer")
	}
	if c.Phone == "" && c.Email == "" {
		l.Add(prefix+".phone", "a phone or an email is required to follow the customer up")
	}
	if c.Phone != "" && !phoneRE.MatchString(c.Phone) {
		l.Add(prefix+".phone", "must be 5–20 digits, optionally with a leading '+'")
	}
	if c.Email != "" && (!strings.Contains(c.Email, "@") || strings.ContainsAny(c.Email, " \t")) {
		l.Add(prefix+".email", "must be an email address")
	}
	if c.Kind != "" && c.Kind != "individual" && c.Kind != "fleet" {
		l.Add(prefix+".kind", "must be individual or fleet")
	}
	if c.Tier != "" {
		if err := tier.Check(c.Tier); err != nil {
			l.Add(prefix+".tier", err.Error())
		}
	}
	if c.ReferredBy != "" && c.ReferredBy == c.ExternalId {
		l.Add(prefix+".referred_by", "a customer cannot refer themselves")
	}
	if c.Preferences != nil {
		ValidatePreferences(l, prefix+".preferences", archive.PreferencesFromProto(c.Preferences))
	}
	for i, o := range c.OwnerIds {
		if o == "" {
			l.Add(fmt.Sprintf("%s.owner_ids[%d]", prefix, i), "must not be empty")
		}
	}
}

// ValidatePreferences checks contact preferences. A customer's own windows
// do not wrap over midnight (unlike a tenant's quiet hours): each must be a
// valid contact.Window with start before end, 0 <= start < end <= 1440.
func ValidatePreferences(l *invalid.List, field string, p *archive.Preferences) {
	for i, ch := range p.OptedOut {
		if ch == typesv1.Channel_CHANNEL_UNSPECIFIED || typesv1.Channel_name[int32(ch)] == "" {
			l.Add(fmt.Sprintf("%s.opted_out[%d]", field, i), "must be a channel, e.g. CHANNEL_PHONE")
		}
	}
	for i, w := range p.Windows {
		if !w.Valid() || w.Wraps() {
			l.Add(fmt.Sprintf("%s.windows[%d]", field, i), "must satisfy 0 <= start_minute < end_minute <= "+fmt.Sprint(contact.MinutesPerDay))
		}
	}
	if p.TimeZone != "" {
		if _, err := time.LoadLocation(p.TimeZone); err != nil || p.TimeZone == "Local" {
			l.Add(field+".time_zone", "must be an IANA time zone, e.g. Asia/Shanghai")
		}
	}
	if p.Language != "" && !langRE.MatchString(p.Language) {
		l.Add(field+".language", "must be a BCP 47 language tag, e.g. zh-CN")
	}
}

// Parse decodes, normalizes and validates a payload.
// extra are the tenant's own service types.
func Parse(contentType string, data []byte, now time.Time, extra ...string) (*eventsv1.ServiceCompleted, error) {
	ev, err := Decode(contentType, data)
	if err != nil {
		return nil, err
	}
	Normalize(ev)
	if err := Validate(ev, now, extra...); err != nil {
		return ev, err
	}
	return ev, nil
}
