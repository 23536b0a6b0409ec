package auth

import (
	"fmt"
	"slices"
	"sort"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Rule says who may call one RPC and how its request is scoped to the caller.
type Rule struct {
	// Permission names what the RPC does ("tasks.claim"): docs and audit use it.
	Permission string
	// Roles may call the RPC; no one else may.
	Roles []Role
	// Self maps request fields that name the acting person (agent_id,
	// leader_id, reviewer_id, by) to the roles that may name someone else
	// there (the application then checks that person is in the caller's
	// scope). Any other caller may only name itself (Principal.Actor), and a
	// blank field is filled with it.
	Self map[string][]Role
	// AllTenants lets a platform operator name every tenant (tenant_id "*").
	AllTenants bool
	// Scope says in words what the application checks beyond the table
	// (org units, assignment, department); the docs show it.
	Scope string
}

// Allows tells whether a caller with p's roles may call the RPC at all.
func (r Rule) Allows(p Principal) bool { return p.HasAny(r.Roles...) }

// Table maps a gRPC full method name (/pkg.Service/Method) to its rule.
type Table map[string]Rule

// Methods returns the table's methods, sorted.
func (t Table) Methods() []string {
	ms := make([]string, 0, len(t))
	for m := range t {
		ms = append(ms, m)
	}
	sort.Strings(ms)
	return ms
}

// Covers checks that the table has a rule for every method of the services
// and no rule for a method they do not have: an RPC added without an entry
// is refused to every caller, and this check makes that a failing test and
// a service that will not start.
func (t Table) Covers(services ...protoreflect.ServiceDescriptor) error {
	seen := map[string]bool{}
	var missing []string
	for _, sd := range services {
		ms := sd.Methods()
		for i := range ms.Len() {
			md := ms.Get(i)
			name := fmt.Sprintf("/%s/%s", sd.FullName(), md.Name())
			seen[name] = true
			r, ok := t[name]
			if !ok {
				missing = append(missing, name)
				continue
			}
			for f := range r.Self {
				fd := md.Input().Fields().ByName(protoreflect.Name(f))
				if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
					return fmt.Errorf("auth: permission table: %s: %s has no string field %q", name, md.Input().FullName(), f)
				}
			}
		}
	}
	var extra []string
	for m := range t {
		if !seen[m] {
			extra = append(extra, m)
		}
	}
	slices.Sort(extra)
	if len(missing) > 0 || len(extra) > 0 {
		return fmt.Errorf("auth: permission table: no rule for %v; rules for methods that do not exist: %v", missing, extra)
	}
	for _, m := range t.Methods() {
		r := t[m]
		if r.Permission == "" || len(r.Roles) == 0 {
			return fmt.Errorf("auth: permission table: %s has no permission name or no role", m)
		}
		roles := slices.Clone(r.Roles)
		for _, over := range r.Self {
			roles = append(roles, over...)
		}
		for _, role := range roles {
			if !Known(role) {
				return fmt.Errorf("auth: permission table: %s names unknown role %q", m, role)
			}
		}
	}
	return nil
}

// Merge returns one table holding the rules of all.
func Merge(tables ...Table) Table {
	out := Table{}
	for _, t := range tables {
		for m, r := range t {
			out[m] = r
		}
	}
	return out
}
