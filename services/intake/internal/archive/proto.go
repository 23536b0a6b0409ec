package archive

import (
	"slices"
	"time"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/contact"
)

// The archive's values as the contract carries them: customers travel in
// events as huifang.types.v1.Customer, and preferences are stored as the
// protojson of huifang.types.v1.ContactPreferences. Conversions live here,
// beside the types, so that the store, the app and the API convert alike.

// FromProto takes the mergeable fields of a customer snapshot, as of at.
func FromProto(c *typesv1.Customer, at time.Time) Record {
	return Record{
		Name: c.GetName(), Phone: c.GetPhone(), Email: c.GetEmail(), Kind: c.GetKind(),
		ReferredBy: c.GetReferredBy(), OrgUnit: c.GetOrgUnit(), Owners: slices.Clone(c.GetOwnerIds()),
		Preferences: PreferencesFromProto(c.GetPreferences()), SourceUpdatedAt: at,
	}
}

// Proto is the customer's snapshot as events carry it (contacts in clear:
// events stay inside Huifang; API answers mask them).
func (c *Customer) Proto() *typesv1.Customer {
	return &typesv1.Customer{
		Id: c.ID, ExternalId: c.ExternalID, Name: c.Name, Phone: c.Phone, Email: c.Email, Tier: c.Tier,
		Preferences: c.Preferences.Proto(), OwnerIds: slices.Clone(c.Owners), OrgUnit: c.OrgUnit,
		Kind: c.KindOrDefault(), ReferredBy: c.ReferredBy,
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
