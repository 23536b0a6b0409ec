package archive

import (
	"slices"
	"strings"
	"time"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/services/intake/internal/privacy"
)

// The archive's values as the contract carries them: customers travel in
// events as huifang.types.v1.Customer, and preferences are stored as the
// protojson of huifang.types.v1.ContactPreferences. Conversions live here,
// beside the types, so that the store, the app and the API convert alike.

// FromProto takes the mergeable fields of a customer snapshot, as of at:
// its tier is the upstream tier (upstream_tier is intake's and not read).
func FromProto(c *typesv1.Customer, at time.Time) Record {
	return Record{
		Name: c.GetName(), Phone: c.GetPhone(), Email: c.GetEmail(), Kind: c.GetKind(),
		ReferredBy: c.GetReferredBy(), OrgUnit: c.GetOrgUnit(), UpstreamTier: c.GetTier(), Owners: slices.Clone(c.GetOwnerIds()),
		Preferences: PreferencesFromProto(c.GetPreferences()), SourceUpdatedAt: at,
	}
}

// Proto is the customer's snapshot as events and answers carry it: the
// contacts masked, never in clear (docs/privacy.md); who needs one asks
// intake's RevealContact at the moment of use.
func (c *Customer) Proto() *typesv1.Customer {
	return &typesv1.Customer{
		Id: c.ID, ExternalId: c.ExternalID, Tier: c.Tier,
		NameMasked: privacy.MaskName(c.Name), PhoneMasked: privacy.MaskPhone(c.Phone), EmailMasked: privacy.MaskEmail(c.Email),
		HasPhone: privacy.NormalizePhone(c.Phone) != "", HasEmail: strings.TrimSpace(c.Email) != "",
		Preferences: c.Preferences.Proto(), OwnerIds: slices.Clone(c.Owners), OrgUnit: c.OrgUnit,
		Kind: c.KindOrDefault(), ReferredBy: c.ReferredBy, UpstreamTier: c.UpstreamTier,
	}
}

// PreferencesFromProto reads contact preferences; nil stays nil.
func PreferencesFromProto(p *typesv1.ContactPreferences) *Preferences {
	if p == nil {
		return nil
	}
	out := &Preferences{
		OptedOut: slices.Clone(p.GetOptedOut()), TimeZone: p.GetTimeZone(), Language: p.GetLanguage(),
		DislikesCalls: p.GetDislikesCalls(),
	}
	for _, w := range p.GetWindows() {
		out.Windows = append(out.Windows, contact.Window{Start: int(w.GetStartMinute()), End: int(w.GetEndMinute())})
	}
	return out
}

// Proto is the preferences as the contract carries them; nil stays nil.
func (p *Preferences) Proto() *typesv1.ContactPreferences {
	if p == nil {
		return nil
	}
	out := &typesv1.ContactPreferences{
		OptedOut: slices.Clone(p.OptedOut), TimeZone: p.TimeZone, Language: p.Language, DislikesCalls: p.DislikesCalls,
	}
	for _, w := range p.Windows {
		out.Windows = append(out.Windows, &typesv1.ContactWindow{StartMinute: int32(w.Start), EndMinute: int32(w.End)})
	}
	return out
}
