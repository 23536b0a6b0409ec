package app

import (
	"context"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/store"
)

// The contact fields RevealContact reveals.
const (
	FieldName  = "name"
	FieldPhone = "phone"
	FieldEmail = "email"
)

// Dispatch is the one service that may reveal contacts: it sends the
// automatic messages and dials for the agent holding a task.
const Dispatch = "dispatch"

// Reveals are the rates of reveals (and lookups by phone) per caller:
// Staff for people, Services for a service (dispatch reveals once per
// message it sends). A nil limiter limits nothing.
type Reveals struct {
	Staff, Services *auth.Limiter
}

// RevealContact asks for a customer's clear contacts.
type RevealContact struct {
	Tenant, CustomerID string
	// Fields are FieldName, FieldPhone, FieldEmail (at least one).
	Fields []string
	// Purpose says why (3 to 200 characters).
	Purpose string
	// OnBehalfOf names, for a service caller, the person or message it
	// reveals for ("agent:a-17", "message:<id>"); required then.
	OnBehalfOf string
}

// Revealed is what RevealContact reveals: the asked fields, the others empty.
type Revealed struct {
	CustomerID, Name, Phone, Email string
}

// admitReveal takes one reveal of the caller's rate, or refuses with
// ResourceExhausted.
func (a *App) admitReveal(ctx context.Context) error {
	p, ok := auth.From(ctx)
	if !ok {
		return nil // in-process callers (tools, tests) carry no principal
	}
	if p.Has(auth.Service) {
		return a.Reveals.Services.Admit(p)
	}
	return a.Reveals.Staff.Admit(p)
}

// RevealContact returns the asked contacts of a customer, for a stated
// purpose, and writes the reveal to the audit log in the transaction that
// read them (contact.reveal: who, on whose behalf, whose, which fields,
// why); a refusal in scope is written too (contact.reveal_refused). A
// leader reveals the customers of the org units it leads, a director any
// of the tenant's, the service dispatch any, on behalf of someone.
func (a *App) RevealContact(ctx context.Context, in RevealContact) (Revealed, error) {
	var l invalid.List
	if in.Tenant == "" {
		l.Add("tenant_id", "is required")
	}
	if in.CustomerID == "" {
		l.Add("customer_id", "is required")
	}
	if len(in.Fields) == 0 {
		l.Add("fields", "name at least one of name, phone, email")
	}
	for _, f := range in.Fields {
		if f != FieldName && f != FieldPhone && f != FieldEmail {
			l.Add("fields", "must be name, phone or email")
			break
		}
	}
	if !audit.ValidPurpose(in.Purpose) {
		l.Add("purpose", audit.PurposeRule)
	}
	p, hasPrincipal := auth.From(ctx)
	service := hasPrincipal && p.Has(auth.Service)
	if service && p.ServiceName != Dispatch {
		return Revealed{}, auth.Deny("", "only the service dispatch reveals contacts")
	}
	if service && strings.TrimSpace(in.OnBehalfOf) == "" {
		l.Add("on_behalf_of", "is required of a service: the agent or the message it reveals for")
	}
	if !service {
		in.OnBehalfOf = ""
	}
	if err := l.Err(); err != nil {
		return Revealed{}, err
	}
	if err := a.admitReveal(ctx); err != nil {
		return Revealed{}, err
	}
	var (
		out     Revealed
		refusal error
	)
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		c, err := a.Store.Customer(ctx, tx, store.CustomerKey{Tenant: in.Tenant, ID: in.CustomerID})
		if err != nil {
			return notFound("customer", err)
		}
		detail := audit.Detail{"fields": in.Fields, "purpose": in.Purpose}
		if in.OnBehalfOf != "" {
			detail["on_behalf_of"] = in.OnBehalfOf
		}
		target := audit.Target{Kind: "customer", ID: c.ID}
		if rp, ok := auth.Restricted(ctx, auth.Director, auth.Service); ok && !rp.InUnits(c.OrgUnit) {
			refusal = auth.Deny("customer_id", "the customer belongs to an org unit the caller does not lead")
			detail["refused"] = "the customer belongs to an org unit the caller does not lead"
			return a.auditTx(ctx, tx, in.Tenant, "contact.reveal_refused", target, detail)
		}
		out = reveal(c, in.Fields)
		return a.auditTx(ctx, tx, in.Tenant, "contact.reveal", target, detail)
	})
	if err != nil {
		return Revealed{}, err
	}
	if refusal != nil {
		return Revealed{}, refusal
	}
	return out, nil
}

// RefusedReveal writes to the audit log that the guard refused a caller's
// RevealContact (a role without contacts.reveal, another tenant): the
// guard calls it before it answers PermissionDenied.
func (a *App) RefusedReveal(ctx context.Context, p auth.Principal, tenant, customerID, reason string) error {
	if tenant == "" || tenant == auth.AllTenants {
		tenant = p.Tenant
	}
	if tenant == auth.AllTenants {
		return nil // a service or operator naming no tenant: nothing of a tenant's was asked
	}
	return a.inTx(ctx, func(tx pgx.Tx) error {
		return a.auditTx(auth.With(ctx, p), tx, tenant, "contact.reveal_refused", audit.Target{Kind: "customer", ID: customerID},
			audit.Detail{"refused": reason})
	})
}

func reveal(c *archive.Customer, fields []string) Revealed {
	out := Revealed{CustomerID: c.ID}
	if slices.Contains(fields, FieldName) {
		out.Name = c.Name
	}
	if slices.Contains(fields, FieldPhone) {
		out.Phone = c.Phone
	}
	if slices.Contains(fields, FieldEmail) {
		out.Email = c.Email
	}
	return out
}
