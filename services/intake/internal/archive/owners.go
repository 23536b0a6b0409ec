package archive

import (
	"fmt"
	"slices"
	"strings"

	"github.com/huifang/huifang/pkg/invalid"
)

// MinOwners is how many staff must know each customer (seed 002: 同一客户两人或两人以上掌握).
// Setting the owners refuses fewer; ingested services and imports add
// owners one by one, so a customer may have fewer until someone adds the
// second (ListCustomers lists them).
const MinOwners = 2

// CheckOwners checks a list of staff owners that is to replace a customer's:
// none empty, at least MinOwners distinct.
func CheckOwners(l *invalid.List, field string, owners []string) {
	seen := map[string]bool{}
	for i, o := range owners {
		if strings.TrimSpace(o) == "" {
			l.Add(fmt.Sprintf("%s[%d]", field, i), "must not be empty")
			return
		}
		seen[o] = true
	}
	if len(seen) < MinOwners {
		l.Add(field, fmt.Sprintf("at least %d distinct staff must know each customer (seed 002)", MinOwners))
	}
}

// SetOwners replaces the customer's owners by owners without repeats, the
// first the primary owner, and returns what changed.
func (c *Customer) SetOwners(owners []string) []string {
	out := AddOwners(nil, owners...)
	if slices.Equal(c.Owners, out) {
		return nil
	}
	c.Owners = out
	return []string{FieldOwners}
}
