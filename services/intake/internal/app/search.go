package app

import (
	"context"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/privacy"
	"github.com/huifang/huifang/services/intake/internal/store"
	"github.com/huifang/huifang/services/intake/internal/tier"
)

var (
	// phoneFragmentRE: digits and what people write between them.
	phoneFragmentRE = regexp.MustCompile(`^\+?[0-9 ().\-]+$`)
	vinSearchRE     = regexp.MustCompile(`^[A-HJ-NPR-Z0-9]{17}$`)
	plateStripRE    = regexp.MustCompile(`[[:space:].·\-]`)
)

// SearchQuery asks SearchCustomers for the customers matching every
// criterion set.
type SearchQuery struct {
	Tenant                              string
	Name, Phone, Plate, VIN, ExternalID string
}

// NormalizePlate is a plate as the search compares it: upper case, without
// spaces, dashes and dots (as the services' index holds it).
func NormalizePlate(plate string) string {
	return strings.ToUpper(plateStripRE.ReplaceAllString(strings.TrimSpace(plate), ""))
}

// searchOf validates q and turns it into the store's search.
func (a *App) searchOf(q SearchQuery) (store.Search, error) {
	var l invalid.List
	s := store.Search{Tenant: q.Tenant, ExternalID: strings.TrimSpace(q.ExternalID)}
	if strings.TrimSpace(q.Name+q.Phone+q.Plate+q.VIN+q.ExternalID) == "" {
		l.Add("name", "set at least one of name, phone, plate, vin, external_id")
		return s, l.Err()
	}
	if q.Name != "" {
		switch words := privacy.NameWords(q.Name); { // at most 100 characters: intake.proto's rule
		case len(words) == 0:
			l.Add("name", "must hold a letter, not only spaces")
		default:
			s.NameHashes = a.Store.Cipher.NameQueryHashes(q.Name)
		}
	}
	if q.Phone != "" {
		digits := privacy.PhoneDigits(q.Phone)
		switch {
		case !phoneFragmentRE.MatchString(strings.TrimSpace(q.Phone)):
			l.Add("phone", "must be digits (spaces, dashes, dots, brackets and a leading '+' allowed)")
		case len(digits) < privacy.MinPhoneDigits:
			l.Add("phone", "must hold at least 4 digits: the last digits of the number")
		default:
			s.PhoneHash = a.Store.Cipher.PhoneTailHash(digits)
		}
	}
	if q.Plate != "" {
		if s.Plate = NormalizePlate(q.Plate); s.Plate == "" || utf8.RuneCountInString(s.Plate) > 16 {
			l.Add("plate", "must be 1 to 16 letters and digits (spaces, dashes and dots ignored)")
		}
	}
	if q.VIN != "" {
		if s.VIN = strings.ToUpper(strings.TrimSpace(q.VIN)); !vinSearchRE.MatchString(s.VIN) {
			l.Add("vin", "must be 17 letters and digits (no I, O or Q)")
		}
	}
	return s, l.Err()
}

// SearchCustomers finds up to size customers by id after afterID matching
// every criterion of q (names and phones through their keyed hashes), with
// the figures their tiers are computed from, and whether more follow. An
// agent or a leader finds only the customers of its org units. A search is
// held to the caller's search rate (ResourceExhausted beyond it) and
// written to the audit log in the transaction that reads (customer.search:
// the criteria used, the phone fragment masked, how many were found):
// answered searches could otherwise enumerate the archive.
func (a *App) SearchCustomers(ctx context.Context, q SearchQuery, size int, afterID string) (list []*archive.Customer, more bool, err error) {
	s, err := a.searchOf(q)
	if err != nil {
		return nil, false, err
	}
	if p, ok := auth.Restricted(ctx, auth.Director, auth.DepartmentOwner); ok {
		s.Units = append([]string{}, p.OrgUnits...)
	}
	if p, ok := auth.From(ctx); ok {
		if err := a.Searches.Admit(p); err != nil {
			return nil, false, err
		}
	}
	detail := audit.Detail{"criteria": criteria(q)}
	if q.Phone != "" {
		detail["phone"] = privacy.MaskPhone(privacy.PhoneDigits(q.Phone))
	}
	if afterID != "" {
		detail["after"] = afterID
	}
	err = a.inTx(ctx, func(tx pgx.Tx) error {
		if list, err = a.Store.SearchCustomers(ctx, tx, s, size+1, afterID); err != nil {
			return err
		}
		if more = len(list) > size; more {
			list = list[:size]
		}
		if err := a.Store.Figures(ctx, tx, q.Tenant, tier.ScopeAt(a.Now()), list); err != nil {
			return err
		}
		detail["found"] = len(list)
		return a.auditTx(ctx, tx, q.Tenant, "customer.search", audit.Target{Kind: "customer"}, detail)
	})
	if err != nil {
		return nil, false, err
	}
	return list, more, nil
}

// criteria names the criteria of q that are set, never their values.
func criteria(q SearchQuery) []string {
	var out []string
	for _, c := range []struct{ name, v string }{
		{"name", q.Name}, {"phone", q.Phone}, {"plate", q.Plate}, {"vin", q.VIN}, {"external_id", q.ExternalID},
	} {
		if strings.TrimSpace(c.v) != "" {
			out = append(out, c.name)
		}
	}
	return out
}
