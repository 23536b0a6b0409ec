// Package archive holds the customer archive's merge rule (客户档案, seed 002:
// kept current as sales change). It does no I/O.
//
// The rule: one customer per (tenant, external id). Each input carries a
// source time (the event's source_updated_at, else its completed_at; an
// import record's source_updated_at). An input at least as new as the archive
// replaces every field it fills (empty fields never erase); an older input
// only fills fields the archive still lacks. Staff owners are a union, the
// archive's first. The archive's source time becomes the newer of the two.
package archive

import (
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

// Record is a customer's mergeable data.
type Record struct {
	Name, Phone, Email, Kind, ReferredBy, OrgUnit string
	Owners                                        []string
	Preferences                                   *typesv1.ContactPreferences
	SourceUpdatedAt                               time.Time
}

// FromProto takes the mergeable fields of a customer snapshot.
func FromProto(c *typesv1.Customer, at time.Time) Record {
	return Record{
		Name: c.GetName(), Phone: c.GetPhone(), Email: c.GetEmail(), Kind: c.GetKind(),
		ReferredBy: c.GetReferredBy(), OrgUnit: c.GetOrgUnit(), Owners: slices.Clone(c.GetOwnerIds()),
		Preferences: c.GetPreferences(), SourceUpdatedAt: at,
	}
}

// Merge applies in to cur by the archive's rule and returns the names of the
// fields that changed (proto field names, as CustomerUpdated.changed_fields).
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
	take("name", &cur.Name, in.Name)
	take("phone", &cur.Phone, in.Phone)
	take("email", &cur.Email, in.Email)
	take("kind", &cur.Kind, in.Kind)
	take("referred_by", &cur.ReferredBy, in.ReferredBy)
	take("org_unit", &cur.OrgUnit, in.OrgUnit)
	if in.Preferences != nil && !proto.Equal(in.Preferences, cur.Preferences) && (newer || cur.Preferences == nil) {
		cur.Preferences = proto.CloneOf(in.Preferences)
		changed = append(changed, "preferences")
	}
	if owners := AddOwners(cur.Owners, in.Owners...); len(owners) != len(cur.Owners) {
		cur.Owners = owners
		changed = append(changed, "owner_ids")
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
