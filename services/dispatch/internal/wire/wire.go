// Package wire converts the contract's messages that dispatch keeps or
// passes on (huifang.types.v1 Customer and ContactCalendar) into the
// domain's values and back, for the adapters and the store: the events
// that bring them, the API that shows them, the snapshot kept with tasks.
package wire

import (
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// Customer converts a customer message; nil is the zero customer.
func Customer(c *typesv1.Customer) task.Customer {
	if c == nil {
		return task.Customer{}
	}
	p := c.GetPreferences()
	return task.Customer{
		ID:         c.GetId(),
		ExternalID: c.GetExternalId(),
		// Never the clear name, phone or email, even where an old
		// producer sent them: dispatch keeps none.
		NameMasked:  c.GetNameMasked(),
		PhoneMasked: c.GetPhoneMasked(),
		EmailMasked: c.GetEmailMasked(),
		HasPhone:    c.GetHasPhone() || c.GetPhone() != "",
		HasEmail:    c.GetHasEmail() || c.GetEmail() != "",
		Tier:        c.GetTier(),
		OwnerIDs:    c.GetOwnerIds(),
		OrgUnit:     c.GetOrgUnit(),
		Kind:        c.GetKind(),
		ReferredBy:  c.GetReferredBy(),
		Preferences: task.Preferences{
			OptedOut:      p.GetOptedOut(),
			Windows:       Windows(p.GetWindows()),
			TimeZone:      p.GetTimeZone(),
			Language:      p.GetLanguage(),
			DislikesCalls: p.GetDislikesCalls(),
		},
	}
}

// CustomerProto converts a customer back; the zero customer is nil, and
// preferences that say nothing are left unset.
func CustomerProto(c task.Customer) *typesv1.Customer {
	if c.IsZero() {
		return nil
	}
	out := &typesv1.Customer{
		Id: c.ID, ExternalId: c.ExternalID, NameMasked: c.NameMasked, PhoneMasked: c.PhoneMasked, EmailMasked: c.EmailMasked,
		HasPhone: c.HasPhone, HasEmail: c.HasEmail, Tier: c.Tier,
		OwnerIds: c.OwnerIDs, OrgUnit: c.OrgUnit, Kind: c.Kind, ReferredBy: c.ReferredBy,
	}
	if p := c.Preferences; !p.IsZero() {
		out.Preferences = &typesv1.ContactPreferences{OptedOut: p.OptedOut, Windows: WindowsProto(p.Windows),
			TimeZone: p.TimeZone, Language: p.Language, DislikesCalls: p.DislikesCalls}
	}
	return out
}

// Windows converts contact windows.
func Windows(ws []*typesv1.ContactWindow) []contact.Window {
	if len(ws) == 0 {
		return nil
	}
	out := make([]contact.Window, len(ws))
	for i, w := range ws {
		out[i] = contact.Window{Start: int(w.GetStartMinute()), End: int(w.GetEndMinute())}
	}
	return out
}

// WindowsProto converts contact windows back.
func WindowsProto(ws []contact.Window) []*typesv1.ContactWindow {
	if len(ws) == 0 {
		return nil
	}
	out := make([]*typesv1.ContactWindow, len(ws))
	for i, w := range ws {
		out[i] = &typesv1.ContactWindow{StartMinute: int32(w.Start), EndMinute: int32(w.End)}
	}
	return out
}

// Calendar converts a tenant's contact calendar; nil (a visit fired before
// calendars existed) is the zero calendar, which allows any time.
func Calendar(c *typesv1.ContactCalendar) contact.Calendar {
	if c == nil {
		return contact.Calendar{}
	}
	out := contact.Calendar{Windows: Windows(c.GetWindows()), TimeZone: c.GetTimeZone(), Holidays: c.GetHolidays(),
		AvoidHolidays: c.GetAvoidHolidays()}
	if q := c.GetQuietHours(); q != nil {
		out.Quiet = &contact.Window{Start: int(q.GetStartMinute()), End: int(q.GetEndMinute())}
	}
	return out
}
