package contact

import (
	"slices"
	"time"
)

// Customer is what the scheduler keeps of a customer's contact preferences:
// the newest preferences the customer archive sent (CustomerUpdated, version
// ≥ 1) or, until there is one, the snapshot a service carried (version 0),
// and every channel the customer opted out of.
type Customer struct {
	Version int64
	// Prefs are the preferences as the newest update said them.
	Prefs Prefs
	// OptedOut are the channels the customer opted out of: only ever added to.
	OptedOut []int32
	Tier     string
	// UpdatedAt is when the customer last changed (zero: never saved).
	UpdatedAt time.Time
}

// Update applies the preferences an event carries at version (0 for the
// snapshot on a ServiceCompleted and the like): a CustomerUpdated replaces
// only an older version, a snapshot never replaces a CustomerUpdated (but
// does replace an older snapshot), and no opt-out is ever lost. It tells
// whether the customer changed.
func (c *Customer) Update(version int64, p Prefs, tier string, at time.Time) bool {
	if !(c.Version < version || (version == 0 && c.Version == 0)) {
		return false
	}
	c.Version, c.Prefs, c.Tier, c.UpdatedAt = version, p, tier, at
	c.OptedOut = union(c.OptedOut, p.OptedOut)
	return true
}

// Holds tells whether c holds what an event carries at version already:
// the same version, preferences and tier, and every channel it opts out
// of. Update would then change nothing but when c changed, so a snapshot
// that finds the customer so is not written again.
func (c Customer) Holds(version int64, p Prefs, tier string) bool {
	return c.Version == version && c.Tier == tier && c.Prefs.TimeZone == p.TimeZone &&
		c.Prefs.DislikesCalls == p.DislikesCalls && slices.Equal(c.Prefs.OptedOut, p.OptedOut) &&
		slices.Equal(c.Prefs.Windows, p.Windows) && !slices.ContainsFunc(p.OptedOut, func(ch int32) bool { return !slices.Contains(c.OptedOut, ch) })
}

// OptOut records that the customer opted out of a channel (ContactOptedOut).
func (c *Customer) OptOut(channel int32, at time.Time) {
	c.OptedOut = union(c.OptedOut, []int32{channel})
	c.UpdatedAt = at
}

// Effective are the preferences planning and firing apply: the newest ones,
// with every channel the customer ever opted out of.
func (c Customer) Effective() Prefs {
	p := c.Prefs
	p.OptedOut = union(slices.Clone(p.OptedOut), c.OptedOut)
	return p
}

// union adds the channels of more that are not in have yet.
func union(have, more []int32) []int32 {
	for _, ch := range more {
		if !slices.Contains(have, ch) {
			have = append(have, ch)
		}
	}
	return have
}
