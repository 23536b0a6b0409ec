package task

import (
	"slices"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/contact"
)

// Customer is the snapshot of the customer a task is for, as intake keeps
// it (through the scheduler's VisitDue, or CustomerUpdated). Dispatch reads
// its owners, tier and language for routing, whether it has a phone or an
// email for automatic messages, and its own contact windows and time zone
// for placing attempts; the rest travels with the task to the agent's desk.
// It holds no clear contact: the masked forms show who it is, and the
// address is asked of intake at the moment of use (Contacts).
type Customer struct {
	ID         string
	ExternalID string
	// The masked name, phone and email, as intake shows them.
	NameMasked, PhoneMasked, EmailMasked string
	// HasPhone and HasEmail say whether intake holds a phone, an email.
	HasPhone, HasEmail bool
	// Tier is intake's tier (e.g. "key"); Rules.TierRank orders it.
	Tier string
	// OwnerIDs are the staff who know the customer (seed 002: at least two);
	// the first is the primary owner, the second the backup.
	OwnerIDs   []string
	OrgUnit    string
	Kind       string
	ReferredBy string
	// Preferences the customer gave (contact windows, time zone, language,
	// opt-outs).
	Preferences Preferences
}

// Preferences are a customer's contact preferences.
type Preferences struct {
	// OptedOut are the channels the customer asked not to be contacted on.
	OptedOut []typesv1.Channel
	// Windows are the customer's own contact windows; empty: the tenant's.
	Windows []contact.Window
	// TimeZone is the customer's IANA zone; empty: the tenant's.
	TimeZone string
	// Language is a BCP 47 tag, matched against agents' skills.
	Language      string
	DislikesCalls bool
}

// IsZero reports whether p says nothing.
func (p Preferences) IsZero() bool {
	return len(p.OptedOut) == 0 && len(p.Windows) == 0 && p.TimeZone == "" && p.Language == "" && !p.DislikesCalls
}

// IsZero reports whether c is no customer at all (a visit without one).
func (c Customer) IsZero() bool {
	return c.ID == "" && c.ExternalID == "" && c.NameMasked == "" && c.PhoneMasked == "" && c.EmailMasked == "" && !c.HasPhone && !c.HasEmail && c.Tier == "" &&
		len(c.OwnerIDs) == 0 && c.OrgUnit == "" && c.Kind == "" && c.ReferredBy == "" && c.Preferences.IsZero()
}

// Contact returns what the customer said about being contacted, as
// pkg/contact reads it: the customer's own valid windows (they replace the
// tenant's) and time zone.
func (c Customer) Contact() contact.Preferences {
	ws := slices.DeleteFunc(slices.Clone(c.Preferences.Windows), func(w contact.Window) bool { return !w.Valid() })
	return contact.Preferences{Windows: ws, TimeZone: c.Preferences.TimeZone}
}

// Reachable reports whether the customer has an address for channel ch:
// an email for email, a phone for the others.
func (c Customer) Reachable(ch typesv1.Channel) bool {
	if ch == typesv1.Channel_CHANNEL_EMAIL {
		return c.HasEmail
	}
	return c.HasPhone
}

// MaskedAddress is the masked form of the address of channel ch.
func (c Customer) MaskedAddress(ch typesv1.Channel) string {
	if ch == typesv1.Channel_CHANNEL_EMAIL {
		return c.EmailMasked
	}
	return c.PhoneMasked
}
