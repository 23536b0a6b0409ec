package app

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/ingest"
	"github.com/huifang/huifang/services/intake/internal/tier"
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
//
// It works set-wise, however many records: the customers the valid records
// name are read and locked in one statement, their tier figures in one
// query; the records are merged in Go in their order (several records of
// one customer one after the other, each settled and announced as if
// imported alone); then the changed customers are written by a COPY and one
// statement, their CustomerUpdated by another, the audit entries of changed
// preferences by one append. A customer that records only confirm (a
// resumed import) writes nothing. A new customer a concurrent writer
// created meanwhile is merged again, set-wise, on the row the other writer
// committed (importSet), so nothing is overwritten. A referrer outside the call that a record newly
// names is re-evaluated once, after the call's customers are written.
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
	var valid []validRecord
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
			continue
		}
		valid = append(valid, validRecord{index: i, line: rec.Line, customer: rec.Customer, at: at})
	}
	if len(valid) > 0 {
		if err := a.importSet(ctx, tx, t, valid, out.Results); err != nil {
			return Import{}, err
		}
	}
	out.count()
	return out, nil
}

// count sets the counts of the outcomes from the results.
func (out *Import) count() {
	for _, r := range out.Results {
		switch r.Outcome {
		case Imported:
			out.Imported++
		case Updated:
			out.Updated++
		case Unchanged:
			out.Unchanged++
		default:
			out.Rejected++
		}
	}
}

// validRecord is a record of a call that passed validation.
type validRecord struct {
	index    int // in the call
	line     int64
	customer *typesv1.Customer
	at       time.Time
}

// refusal is the refusal of the call for its record at index: a customer
// whose CustomerUpdated would be too large after the merge refuses the
// call (its records all or none).
func refusal(rec validRecord, err error) error {
	return fmt.Errorf("record on line %d: %w", rec.line, refusedAs(fmt.Sprintf("records[%d].customer", rec.index), err))
}

// importSet merges the valid records of a call set-wise (ImportCustomersTx)
// and fills in their results. A customer new to the call that a concurrent
// writer created meanwhile (above all another call of the same import in
// flight, a repeat in each) is merged again by a second pass over just its
// records, set-wise too, on the row the other writer committed: as the
// one-record way (importRecord) would merge them, without a lock, a
// figures query, a save and an outbox row per record.
func (a *App) importSet(ctx context.Context, tx pgx.Tx, tenantID string, recs []validRecord, results []ImportResult) error {
	now := a.Now()
	pass, err := a.mergeSet(ctx, tx, tenantID, recs, results, now)
	if err != nil {
		return err
	}
	outside, entries := pass.outside, pass.entries
	if len(pass.taken) > 0 {
		again, err := a.mergeSet(ctx, tx, tenantID, pass.taken, results, now)
		if err != nil {
			return err
		}
		// Taken again: a customer gone and created anew between the two
		// passes; the one-record way, which tries until it holds the row.
		for _, rec := range again.taken {
			res := &results[rec.index]
			if res.Outcome, res.CustomerID, err = a.importRecord(ctx, tx, tenantID, rec.customer, rec.at); err != nil {
				return refusal(rec, err)
			}
		}
		outside, entries = append(outside, again.outside...), append(entries, again.entries...)
	}
	if err := a.referredSet(ctx, tx, tenantID, outside, now); err != nil {
		return err
	}
	// Last: the audit log's head stays locked until the commit.
	return audit.Append(ctx, tx, entries...)
}

// setPass is what a pass of mergeSet leaves to the rest of the call.
type setPass struct {
	// taken are the records of new customers a concurrent writer created
	// meanwhile: nothing of them is written, their results are to be set.
	taken []validRecord
	// outside are the referrers outside the pass's customers its records
	// newly name.
	outside []referral
	// entries are the audit entries of the changes written.
	entries []audit.Entry
}

// mergeSet merges recs set-wise: their customers read and locked in one
// statement, their figures read in one query, the records merged in Go in
// order, the changed customers written by SaveCustomerSet and announced by
// one insert; the records' results are filled in, except those of taken.
func (a *App) mergeSet(ctx context.Context, tx pgx.Tx, tenantID string, recs []validRecord, results []ImportResult, now time.Time) (setPass, error) {
	var exts []string
	firstAt := map[string]time.Time{}
	for _, r := range recs {
		if _, ok := firstAt[r.customer.ExternalId]; !ok {
			firstAt[r.customer.ExternalId] = r.at
			exts = append(exts, r.customer.ExternalId)
		}
	}
	set, err := a.Store.LockCustomerSet(ctx, tx, tenantID, exts)
	if err != nil {
		return setPass{}, err
	}
	// The customers the archive does not hold yet exist from their first
	// record on (until then a referral to them finds none).
	exists := map[string]bool{}
	for _, ext := range exts {
		if _, ok := set.Customer(ext); ok {
			exists[ext] = true
		} else {
			set.Add(ext, firstAt[ext])
		}
	}
	// The figures as they stand; imports change only the referrals among
	// them, which the merge below keeps current as records name referrers.
	if err := a.Store.Figures(ctx, tx, tenantID, tier.ScopeAt(now), set.Customers()); err != nil {
		return setPass{}, err
	}

	var (
		pass       setPass
		changedSet []*archive.Customer
		dirty      = map[string]bool{}
		events     []pendingEvent
		entries    []pendingEntry
	)
	touch := func(c *archive.Customer) {
		if !dirty[c.ExternalID] {
			dirty[c.ExternalID] = true
			changedSet = append(changedSet, c)
		}
	}
	announce := func(rec validRecord, c *archive.Customer, changed []string) error {
		ev := customerUpdated(c, changed)
		if n, limit := proto.Size(ev), a.EventLimit(); n > limit {
			return refusal(rec, &tooLargeError{event: string(ev.ProtoReflect().Descriptor().Name()), size: n, limit: limit})
		}
		events = append(events, pendingEvent{externalID: c.ExternalID, ev: ev})
		return nil
	}
	for _, rec := range recs {
		ext := rec.customer.ExternalId
		c, _ := set.Customer(ext)
		created := !exists[ext]
		exists[ext] = true
		before := c.ReferredBy
		changed := archive.Merge(&c.Record, archive.FromProto(rec.customer, rec.at))
		if created {
			changed = append([]string{archive.FieldCreated}, changed...)
		}
		if c.ReferredBy != before {
			if r, ok := set.Customer(before); ok {
				r.Metrics.Referrals--
			}
			if r, ok := set.Customer(c.ReferredBy); ok {
				r.Metrics.Referrals++
			}
		}
		changed = c.Settle(a.Rules, changed, now)
		res := &results[rec.index]
		res.CustomerID = c.ID
		switch {
		case created:
			res.Outcome = Imported
		case len(changed) > 0:
			res.Outcome = Updated
		default:
			res.Outcome = Unchanged
		}
		if len(changed) == 0 {
			continue
		}
		touch(c)
		if err := announce(rec, c, changed); err != nil {
			return setPass{}, err
		}
		if slices.Contains(changed, archive.FieldPreferences) {
			entries = append(entries, pendingEntry{externalID: ext, entry: a.preferencesEntry(ctx, c, "ImportCustomers")})
		}
		ref := c.NewReferrer(changed)
		r, inSet := set.Customer(ref)
		switch {
		case ref == "":
		case !inSet:
			pass.outside = append(pass.outside, referral{rec: rec, ref: ref})
		case exists[ref]:
			// As announce re-evaluates a referrer in the archive.
			if refChanged := r.Settle(a.Rules, nil, now); len(refChanged) > 0 {
				touch(r)
				if err := announce(rec, r, refChanged); err != nil {
					return setPass{}, err
				}
			}
		}
	}

	taken, err := a.Store.SaveCustomerSet(ctx, tx, set, changedSet)
	if err != nil {
		return setPass{}, err
	}
	redo := map[string]bool{}
	for _, ext := range taken {
		redo[ext] = true
	}
	msgs := make([]outbox.Message, 0, len(events))
	for _, e := range events {
		if !redo[e.externalID] {
			msgs = append(msgs, outbox.Message{ID: e.ev.EventId, Subject: stream.SubjectCustomerUpdated, Payload: e.ev})
		}
	}
	if _, err := outbox.AddMany(ctx, tx, msgs); err != nil {
		return setPass{}, err
	}
	for _, e := range entries {
		if !redo[e.externalID] {
			pass.entries = append(pass.entries, e.entry)
		}
	}
	for _, rec := range recs {
		if redo[rec.customer.ExternalId] {
			pass.taken = append(pass.taken, rec)
		}
	}
	return pass, nil
}

// referredSet re-evaluates the referrers outside an import's customers
// that its records newly name, as referred does one by one, set-wise: the
// referrers (each once, in the order first named) read and locked in one
// statement after the call's customers are written, their figures in one
// query, the changed ones written by SaveCustomerSet and announced by one
// insert. A referrer the archive does not hold is passed over.
func (a *App) referredSet(ctx context.Context, tx pgx.Tx, tenantID string, outside []referral, now time.Time) error {
	if len(outside) == 0 {
		return nil
	}
	var refs []string
	first := map[string]referral{}
	for _, r := range outside {
		if _, ok := first[r.ref]; !ok {
			first[r.ref] = r
			refs = append(refs, r.ref)
		}
	}
	set, err := a.Store.LockCustomerSet(ctx, tx, tenantID, refs)
	if err != nil {
		return err
	}
	if err := a.Store.Figures(ctx, tx, tenantID, tier.ScopeAt(now), set.Customers()); err != nil {
		return err
	}
	var (
		save []*archive.Customer
		msgs []outbox.Message
	)
	for _, ref := range refs {
		c, ok := set.Customer(ref)
		if !ok {
			continue // not (yet) in the archive: its own first change evaluates it
		}
		changed := c.Settle(a.Rules, nil, now)
		if len(changed) == 0 {
			continue
		}
		ev := customerUpdated(c, changed)
		if n, limit := proto.Size(ev), a.EventLimit(); n > limit {
			return refusal(first[ref].rec, &tooLargeError{event: string(ev.ProtoReflect().Descriptor().Name()), size: n, limit: limit})
		}
		save = append(save, c)
		msgs = append(msgs, outbox.Message{ID: ev.EventId, Subject: stream.SubjectCustomerUpdated, Payload: ev})
	}
	if _, err := a.Store.SaveCustomerSet(ctx, tx, set, save); err != nil {
		return err
	}
	_, err = outbox.AddMany(ctx, tx, msgs)
	return err
}

// pendingEvent is a CustomerUpdated of an import, written once the
// customers are.
type pendingEvent struct {
	externalID string
	ev         *eventsv1.CustomerUpdated
}

// pendingEntry is an audit entry of an import, appended once the
// customers are written.
type pendingEntry struct {
	externalID string
	entry      audit.Entry
}

// referral is a referrer outside an import's customers that a record newly
// names.
type referral struct {
	rec validRecord
	ref string
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
