package auth

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// ErrPermissionDenied wraps every refusal of an authenticated caller.
var ErrPermissionDenied = errors.New("permission denied")

// Denied says which request field a caller may not set as it did, and why.
type Denied struct {
	Field  string
	Reason string
}

func (d *Denied) Error() string {
	if d.Field == "" {
		return "permission denied: " + d.Reason
	}
	return fmt.Sprintf("permission denied: %s: %s", d.Field, d.Reason)
}

// Unwrap makes a Denied an ErrPermissionDenied.
func (d *Denied) Unwrap() error { return ErrPermissionDenied }

// Bind scopes req to the caller: every tenant_id in it (at any depth) must be
// the caller's tenant and a blank one becomes it; every source_system of an
// integrator's request must be its own; the rule's Self fields must name the
// caller (Principal.Actor) unless it holds a role the rule lets name others. A platform operator may name
// any tenant, and "*" where the rule allows every tenant. Bind changes req
// only when it returns nil.
func Bind(p Principal, r Rule, req proto.Message) error {
	m := req.ProtoReflect()
	for _, check := range []bool{true, false} {
		if err := walk(p, r, m, "", check); err != nil {
			return err
		}
		if err := self(p, r, m, check); err != nil {
			return err
		}
	}
	return nil
}

// walk checks (check true) or fills (check false) the tenant_id and
// source_system fields of m and the messages under it.
func walk(p Principal, r Rule, m protoreflect.Message, path string, check bool) error {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		name := path + string(fd.Name())
		switch {
		case fd.Kind() == protoreflect.StringKind && fd.Cardinality() != protoreflect.Repeated:
			var err error
			switch fd.Name() {
			case "tenant_id":
				err = bindTenant(p, r, m, fd, name, check)
			case "source_system":
				err = bindSource(p, m, fd, name, check)
			}
			if err != nil {
				return err
			}
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			if !m.Has(fd) {
				continue
			}
			v := m.Get(fd)
			switch {
			case fd.IsList():
				l := v.List()
				for j := range l.Len() {
					if err := walk(p, r, l.Get(j).Message(), fmt.Sprintf("%s[%d].", name, j), check); err != nil {
						return err
					}
				}
			case fd.IsMap():
				if fd.MapValue().Kind() != protoreflect.MessageKind {
					continue
				}
				var err error
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					err = walk(p, r, mv.Message(), fmt.Sprintf("%s[%v].", name, k.Interface()), check)
					return err == nil
				})
				if err != nil {
					return err
				}
			default:
				if err := walk(p, r, v.Message(), name+".", check); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func bindTenant(p Principal, r Rule, m protoreflect.Message, fd protoreflect.FieldDescriptor, name string, check bool) error {
	got := m.Get(fd).String()
	switch {
	case p.Tenant == AllTenants:
		if got == AllTenants && !r.AllTenants {
			return &Denied{name, `"*" (every tenant) is not accepted here`}
		}
		return nil
	case got == "":
		if !check {
			m.Set(fd, protoreflect.ValueOfString(p.Tenant))
		}
		return nil
	case got == AllTenants:
		return &Denied{name, `"*" (every tenant) is for a platform operator only`}
	case got != p.Tenant:
		return &Denied{name, fmt.Sprintf("the caller acts for tenant %q only", p.Tenant)}
	}
	return nil
}

func bindSource(p Principal, m protoreflect.Message, fd protoreflect.FieldDescriptor, name string, check bool) error {
	if !p.Has(Integrator) {
		return nil
	}
	got := m.Get(fd).String()
	switch {
	case got == "":
		if !check {
			m.Set(fd, protoreflect.ValueOfString(p.SourceSystem))
		}
	case got != p.SourceSystem:
		return &Denied{name, fmt.Sprintf("the integrator speaks for source system %q only", p.SourceSystem)}
	}
	return nil
}

func self(p Principal, r Rule, m protoreflect.Message, check bool) error {
	fields := m.Descriptor().Fields()
	for _, f := range slices.Sorted(maps.Keys(r.Self)) {
		if p.HasAny(r.Self[f]...) {
			continue
		}
		fd := fields.ByName(protoreflect.Name(f))
		if fd == nil {
			return &Denied{f, "the permission table names a field the request does not have"}
		}
		got, me := m.Get(fd).String(), p.Actor()
		switch {
		case got == "":
			if !check {
				m.Set(fd, protoreflect.ValueOfString(me))
			}
		case got != me:
			return &Denied{f, fmt.Sprintf("the caller may name only itself (%q) here", me)}
		}
	}
	return nil
}

// Deny returns the refusal of a scope check of the application: field (may
// be empty) and why the caller may not act there. It is an
// ErrPermissionDenied, answered PermissionDenied.
func Deny(field, reason string) error { return &Denied{Field: field, Reason: reason} }

// Restricted returns the caller of ctx when it is held to its own work or
// units: it holds none of the roles that see the whole tenant (wide).
// Calls without a principal (consumers, loops, tests of the application)
// are not restricted.
func Restricted(ctx context.Context, wide ...Role) (Principal, bool) {
	p, ok := From(ctx)
	if !ok || p.HasAny(wide...) || p.Has(PlatformOperator) {
		return Principal{}, false
	}
	return p, true
}

// InUnits tells whether unit is one of the principal's org units.
func (p Principal) InUnits(unit string) bool { return unit != "" && slices.Contains(p.OrgUnits, unit) }

// InDepartments tells whether department is one the principal answers for.
func (p Principal) InDepartments(department string) bool {
	return department != "" && slices.Contains(p.Departments, department)
}
