package store

import (
	"context"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/intake/internal/archive"
)

// searchHashes are the search hashes saved with c (never nil: the column is
// NOT NULL); none for an erased customer.
func (s *Store) searchHashes(c *archive.Customer) []string {
	if c.Erased {
		return []string{}
	}
	h := s.Cipher.SearchHashes(c.Name, c.Phone)
	if h == nil {
		return []string{}
	}
	return h
}

// Search narrows SearchCustomers: every criterion set must hold.
type Search struct {
	Tenant string
	// NameHashes: the customer's search hashes hold one of them.
	NameHashes []string
	// PhoneHash: the customer's search hashes hold it.
	PhoneHash string
	// Plate (normalized: upper case, no spaces, dashes, dots) and VIN
	// (upper case): a service of the customer reported that car.
	Plate, VIN string
	ExternalID string
	// Units, when not nil, are the only org units whose customers are
	// found (an agent's or a leader's).
	Units []string
}

// SearchCustomers lists up to limit customers matching f, by id after the
// cursor.
func (s *Store) SearchCustomers(ctx context.Context, q postgres.Querier, f Search, limit int, afterID string) ([]*archive.Customer, error) {
	names := f.NameHashes
	if names == nil {
		names = []string{}
	}
	rows, err := q.Query(ctx, selectCustomers+`
WHERE tenant_id = $1 AND id > $2
  AND (cardinality($3::text[]) = 0 OR search_hashes && $3::text[])
  AND ($4 = '' OR search_hashes @> ARRAY[$4::text])
  AND ($5 = '' OR id IN (SELECT customer_id FROM services WHERE tenant_id = $1 AND vehicle ? 'plate'
    AND upper(regexp_replace(vehicle->>'plate', '[[:space:].·-]', '', 'g')) = $5))
  AND ($6 = '' OR id IN (SELECT customer_id FROM services WHERE tenant_id = $1 AND vin <> '' AND vin = $6))
  AND ($7 = '' OR external_id = $7)
  AND ($8::text[] IS NULL OR org_unit = ANY($8::text[]))
ORDER BY id LIMIT $9`,
		f.Tenant, afterID, names, f.PhoneHash, f.Plate, f.VIN, f.ExternalID, f.Units, limit)
	if err != nil {
		return nil, wrap("search customers", err)
	}
	return s.scanCustomers(ctx, rows, "search customers")
}
