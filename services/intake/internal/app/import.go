package app

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/ingest"
)

// MaxImportBatch bounds the records of one ImportCustomers.
const MaxImportBatch = 1000

// ImportCustomers is part of an existing customer archive (CSV or JSON
// Lines read by huifang-import).
type ImportCustomers struct {
	Tenant  string
	Records []ImportRecord
}

// ImportRecord is one customer record of an import, as the source has it.
type ImportRecord struct {
	// Line is where it stands in the source file.
	Line     int64
	Customer *typesv1.Customer
	// SourceUpdatedAt orders it against other inputs; unset: the import time.
	SourceUpdatedAt *timestamppb.Timestamp
}

// ImportOutcome is what importing one record did.
type ImportOutcome int

// Outcomes of a record.
const (
	Imported ImportOutcome = iota + 1
	Updated
	Unchanged
	Rejected
)

// ImportResult is the outcome of one record.
type ImportResult struct {
	Line       int64
	Outcome    ImportOutcome
	CustomerID string
	// Invalid names the broken rules of a Rejected record.
	Invalid *invalid.Error
}

// Import is what an import did: one result per record, in order, and the counts.
type Import struct {
	Results                                []ImportResult
	Imported, Updated, Unchanged, Rejected int
}

// ImportCustomers merges archive records by the archive's rule in a
// transaction of its own: the valid records of a call all or none, so a
// caller that retries a failed call never half-imports it; a bad record
// refuses only itself. Importing the same records again changes nothing, so
// an interrupted import can simply be run again.
func (a *App) ImportCustomers(ctx context.Context, in ImportCustomers) (Import, error) {
	var out Import
	err := a.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = a.ImportCustomersTx(ctx, tx, in)
		return err
	})
	return out, err
}

// ImportCustomersTx is ImportCustomers within the caller's transaction.
func (a *App) ImportCustomersTx(ctx context.Context, tx pgx.Tx, in ImportCustomers) (Import, error) {
	var bad invalid.List
	t := tenant.Parse(&bad, "tenant_id", in.Tenant)
	switch err := bad.Err(); {
	case err != nil:
		return Import{}, err
	case len(in.Records) == 0:
		return Import{}, invalid.New("records", "at least one record is required")
	case len(in.Records) > MaxImportBatch:
		return Import{}, invalid.New("records", fmt.Sprintf("at most %d records per call", MaxImportBatch))
	}
	out := Import{Results: make([]ImportResult, len(in.Records))}
	now := a.Now()
	for i, rec := range in.Records {
		r := &out.Results[i]
		r.Line = rec.Line
		var l invalid.List
		if n := proto.Size(rec.Customer); n > a.EventLimit() {
			l.Add(fmt.Sprintf("records[%d].customer", i), fmt.Sprintf("must be at most %d bytes", a.EventLimit()))
		}
		at := ingest.ImportRecord(&l, i, rec.Customer, rec.SourceUpdatedAt, now)
		if err := l.Err(); err != nil {
			r.Outcome, r.Invalid = Rejected, asInvalid(err)
			out.Rejected++
			continue
		}
		var err error
		if r.Outcome, r.CustomerID, err = a.importRecord(ctx, tx, t, rec.Customer, at); err != nil {
			// A customer whose CustomerUpdated would be too large after
			// the merge refuses the call (its records all or none).
			return Import{}, fmt.Errorf("record on line %d: %w", rec.Line, refusedAs(fmt.Sprintf("records[%d].customer", i), err))
		}
		switch r.Outcome {
		case Imported:
			out.Imported++
		case Updated:
			out.Updated++
		default:
			out.Unchanged++
		}
	}
	return out, nil
}

// importRecord merges one valid record into the archive.
func (a *App) importRecord(ctx context.Context, tx pgx.Tx, tenantID string, c *typesv1.Customer, at time.Time) (ImportOutcome, string, error) {
	input := archive.FromProto(c, at)
	var (
		changed []string
		isNew   bool
	)
	cust, err := a.Store.UpsertCustomer(ctx, tx, tenantID, c.ExternalId, at, func(cu *archive.Customer, created bool) (bool, error) {
		isNew = created
		changed = archive.Merge(&cu.Record, input)
		if created {
			changed = append([]string{archive.FieldCreated}, changed...)
		}
		var err error
		changed, err = a.settle(ctx, tx, cu, changed)
		return len(changed) > 0, err
	})
	if err != nil {
		return 0, "", err
	}
	if err := a.announce(ctx, tx, cust, changed, "ImportCustomers"); err != nil {
		return 0, "", err
	}
	switch {
	case isNew:
		return Imported, cust.ID, nil
	case len(changed) > 0:
		return Updated, cust.ID, nil
	}
	return Unchanged, cust.ID, nil
}
