// Package tenant holds what every service knows of tenants: the default
// tenant of requests and events that name none, the form of a tenant id,
// and the tenant of an event.
package tenant

import (
	"regexp"
	"strings"

	"github.com/huifang/huifang/pkg/invalid"
)

// Default is the tenant of requests and events that name none.
const Default = "default"

// Rule says in words what a tenant id must look like; Valid checks it.
const Rule = "must match ^[a-z0-9][a-z0-9_-]{0,62}$"

var pattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Valid tells whether id is a well-formed tenant id.
func Valid(id string) bool { return pattern.MatchString(id) }

// Or returns id without surrounding blanks, or Default when it is blank.
func Or(id string) string {
	if id = strings.TrimSpace(id); id == "" {
		return Default
	}
	return id
}

// Parse returns the tenant a request names in field (Default when blank)
// and adds a violation to bad when the id is malformed.
func Parse(bad *invalid.List, field, id string) string {
	id = Or(id)
	if !Valid(id) {
		bad.Add(field, Rule)
	}
	return id
}

// Check returns an *invalid.Error naming field when id (defaulted as Or
// does) is malformed, else nil.
func Check(field, id string) error {
	var bad invalid.List
	Parse(&bad, field, id)
	return bad.Err()
}

// Carrier is a message that names its tenant, as every Huifang event and
// most requests do.
type Carrier interface{ GetTenantId() string }

// Of returns the tenant a message names (Default when it names none or
// cannot name one).
func Of(m any) string {
	if c, ok := m.(Carrier); ok {
		return Or(c.GetTenantId())
	}
	return Default
}
