// Package archive holds the customer archive (客户档案, seed 002: kept
// current as sales change): the customer as plain Go values, the merge rule
// that keeps one customer per (tenant, external id) whatever the order of
// the inputs, staff ownership (seed 002: every customer known to at least
// two staff), and when a change is due to be announced. It does no I/O.
//
// The merge rule: each input carries a source time (the event's
// source_updated_at, else its completed_at; an import record's
// source_updated_at, else the import time). An input at least as new as the
// archive replaces every field it fills (empty fields never erase); an older
// input only fills fields the archive still lacks. Staff owners are a union,
// the archive's first. The archive's source time becomes the newer of the two.
package archive

import (
	"slices"
	"time"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/services/intake/internal/tier"
)

// The names of changed fields, as CustomerUpdated.changed_fields carries them
// (the proto field names of huifang.types.v1.Customer, and "created").
const (
	FieldCreated     = "created"
	FieldName        = "name"
	FieldPhone       = "phone"
	FieldEmail       = "email"
	FieldKind        = "kind"
	FieldReferredBy  = "referred_by"
	FieldOrgUnit     = "org_unit"
	FieldPreferences = "preferences"
	FieldOwners      = "owner_ids"
	FieldTier        = "tier"
	// FieldUpstreamTier: the tier upstream systems sent changed (the tier in
	// effect may not have: a rule overrides it).
	FieldUpstreamTier = "upstream_tier"
)

// Preferences say how and when a customer may be contacted (seed 002).
type Preferences struct {
	// OptedOut are the channels the customer opted out of.
	OptedOut []typesv1.Channel
	// Windows are daily windows in the customer's time zone (no wrap over
	// midnight: 0 <= Start < End <= 1440).
	Windows []contact.Window
	// TimeZone is an IANA zone; Language a BCP 47 tag.
	TimeZone, Language string
	// DislikesCalls: contact less often (seed 002: do not harass).
	DislikesCalls bool
}

// Equal tells whether p and o say the same; a nil p equals only a nil o.
func (p *Preferences) Equal(o *Preferences) bool {
	if p == nil || o == nil {
		return p == o
	}
	return slices.Equal(p.OptedOut, o.OptedOut) && slices.Equal(p.Windows, o.Windows) &&
		p.TimeZone == o.TimeZone && p.Language == o.Language && p.DislikesCalls == o.DislikesCalls
}

// Clone returns a copy of p that shares nothing with it.
func (p *Preferences) Clone() *Preferences {
	if p == nil {
		return nil
	}
	c := *p
	c.OptedOut = slices.Clone(p.OptedOut)
	c.Windows = slices.Clone(p.Windows)
	return &c
}

// Kinds of customers: the key-customer thresholds differ (seed 000, auto dealer).
const (
	KindIndividual = "individual"
	KindFleet      = "fleet"
)

// Record is a customer's mergeable data. UpstreamTier is the tier (class)
// upstream systems sent (customer.tier of their events and imports); the
// tier in effect is the Customer's Tier, decided by Settle.
type Record struct {
	Name, Phone, Email, Kind, ReferredBy, OrgUnit, UpstreamTier string
	Owners                                                      []string
	Preferences                                                 *Preferences
	SourceUpdatedAt                                             time.Time
}

// KindOrDefault is the record's kind; individual when it names none.
func (r Record) KindOrDefault() string {
	if r.Kind == "" {
		return KindIndividual
	}
	return r.Kind
}

// Customer is one customer of the archive.
type Customer struct {
	ID, TenantID, ExternalID string
	Record
	Tier      string
	Version   int64
	UpdatedAt time.Time
	// Metrics are the figures the tier was (or is to be) evaluated from.
	Metrics tier.Metrics
	// Erased: the customer's data key was destroyed (crypto-shredding), so
	// its name, phone and email can no longer be read; they are empty. A
	// save seals what the customer holds then under a new data key.
	Erased bool
}

// Merge applies in to cur by the archive's rule and returns the names of the
// fields that changed.
func Merge(cur *Record, in Record) []string {
	newer := !in.SourceUpdatedAt.Before(cur.SourceUpdatedAt)
	var changed []string
	take := func(name string, dst *string, v string) {
		if v == "" || v == *dst {
			return
		}
		if newer || *dst == "" {
			*dst = v
			changed = append(changed, name)
		}
	}
	take(FieldName, &cur.Name, in.Name)
	take(FieldPhone, &cur.Phone, in.Phone)
	take(FieldEmail, &cur.Email, in.Email)
	take(FieldKind, &cur.Kind, in.Kind)
	take(FieldReferredBy, &cur.ReferredBy, in.ReferredBy)
	take(FieldOrgUnit, &cur.OrgUnit, in.OrgUnit)
	take(FieldUpstreamTier, &cur.UpstreamTier, in.UpstreamTier)
	if in.Preferences != nil && !in.Preferences.Equal(cur.Preferences) && (newer || cur.Preferences == nil) {
		cur.Preferences = in.Preferences.Clone()
		changed = append(changed, FieldPreferences)
	}
	if owners := AddOwners(cur.Owners, in.Owners...); len(owners) != len(cur.Owners) {
		cur.Owners = owners
		changed = append(changed, FieldOwners)
	}
	if in.SourceUpdatedAt.After(cur.SourceUpdatedAt) {
		cur.SourceUpdatedAt = in.SourceUpdatedAt
	}
	return changed
}

// AddOwners appends the staff ids not yet in owners, skipping empty ones.
func AddOwners(owners []string, add ...string) []string {
	out := slices.Clone(owners)
	for _, o := range add {
		if o != "" && !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}

// SetPreferences replaces the customer's contact preferences and returns
// what changed (nothing when they say the same).
func (c *Customer) SetPreferences(p *Preferences) []string {
	if p.Equal(c.Preferences) {
		return nil
	}
	c.Preferences = p.Clone()
	return []string{FieldPreferences}
}

// Settle concludes a change of the customer: it decides the tier from the
// upstream tier and c.Metrics with rules (tier.Decide: the upstream tier
// unless no upstream tier or an override rule) and adds "tier" to changed
// when the tier moves. When
// anything changed, the version goes up by one and the customer is stamped
// with now: it is to be saved and a CustomerUpdated is due, naming the
// returned fields. Nothing changed: nothing to save or announce.
func (c *Customer) Settle(rules []tier.Rule, changed []string, now time.Time) []string {
	m := c.Metrics
	m.Kind = c.KindOrDefault()
	if t := tier.Decide(rules, c.TenantID, c.UpstreamTier, m).Tier; t != c.Tier {
		c.Tier = t
		changed = append(changed, FieldTier)
	}
	if len(changed) == 0 {
		return nil
	}
	c.Version++
	c.UpdatedAt = now
	return changed
}

// NewReferrer is the external id of the customer whose tier a change must
// re-evaluate as well: the referrer the customer now names (seed 000:
// referrals count toward the key tier); "" for none.
func (c *Customer) NewReferrer(changed []string) string {
	if c.ReferredBy != "" && slices.Contains(changed, FieldReferredBy) {
		return c.ReferredBy
	}
	return ""
}
