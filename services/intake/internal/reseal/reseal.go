// Package reseal is intake's background re-encryption of the customer
// archive: it moves the customers stored before per-customer data keys (a
// clear name, contacts in clear or sealed under the old ring key) under data
// keys of their own, and after a key rotation (a new key first in
// ENCRYPTION_KEYS) re-wraps the data keys still wrapped under an older KEK.
// It works in batches, each committed on its own, logs when it starts, its
// progress every LogEvery rows and when it is done, and keeps the gauge
// huifang_intake_encryption_pending at the work left; each batch is recorded
// in the audit log in its transaction (customers.reseal,
// customer_keys.rewrap; tenant "*"). Check refuses a key ring that lacks key
// ids the database still needs.
package reseal

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/intake/internal/store"
)

// MetricName is the gauge of the work left, by kind (label work: "reseal"
// for customers not yet under a data key, "rewrap" for data keys wrapped
// under an older KEK).
const MetricName = "huifang_intake_encryption_pending"

// The values of the gauge's label work.
const (
	WorkReseal = "reseal"
	WorkRewrap = "rewrap"
)

// NewGauge returns the gauge huifang_intake_encryption_pending.
func NewGauge() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MetricName,
		Help: "Rows the background re-encryption still has to do: work=reseal counts customers not yet sealed under a data key of their own, " +
			"work=rewrap data keys wrapped under an older ENCRYPTION_KEYS key. Retire an old key only once both are 0.",
	}, []string{"work"})
}

// Defaults of a Job.
const (
	DefaultBatch    = 500
	DefaultLogEvery = 10000
	DefaultRetry    = 10 * time.Second
)

// Job is the background re-encryption.
type Job struct {
	DB    postgres.DB
	Store *store.Store
	Log   *slog.Logger
	// Pending, when set, is kept at the work left (NewGauge).
	Pending *prometheus.GaugeVec
	// Batch is how many rows a transaction handles; 0: DefaultBatch.
	Batch int
	// LogEvery is how many rows pass between progress lines; 0: DefaultLogEvery.
	LogEvery int
	// Retry is how long it waits before going over rows other writers held
	// (skipped) again; 0: DefaultRetry.
	Retry time.Duration
}

// Check refuses to go on (a *store.MissingKeysError naming the key ids and
// how many rows need each) when the database holds data keys or contacts
// under key ids the key ring no longer has.
func Check(ctx context.Context, db postgres.Querier, st *store.Store) error {
	return st.CheckKeys(ctx, db)
}

// Run re-seals and re-wraps until nothing is left or ctx ends. A failure is
// logged, not returned (the service keeps serving: rows not yet re-sealed
// read as they are); the next start goes on where it stopped.
func (j *Job) Run(ctx context.Context) error {
	log := j.log()
	p, err := j.Store.PendingSeal(ctx, j.DB)
	if err != nil {
		log.WarnContext(ctx, "counting the rows to re-encrypt failed; the next start tries again", "err", err)
		return nil
	}
	j.set(p)
	if p.Zero() {
		return nil
	}
	steps := []struct {
		work, what, action, counts string
		left                       func(store.Pending) int64
		page                       func(ctx context.Context, tx pgx.Tx, after string) (int, string, error)
	}{
		{WorkReseal, "sealing customers under data keys of their own", "customers.reseal", "customers", func(p store.Pending) int64 { return p.Unsealed },
			func(ctx context.Context, tx pgx.Tx, after string) (int, string, error) {
				return j.Store.ResealPage(ctx, tx, after, j.batch())
			}},
		{WorkRewrap, "re-wrapping data keys under the current ENCRYPTION_KEYS key", "customer_keys.rewrap", "keys", func(p store.Pending) int64 { return p.Rewrap },
			func(ctx context.Context, tx pgx.Tx, _ string) (int, string, error) {
				n, err := j.Store.RewrapPage(ctx, tx, j.batch())
				return n, "", err
			}},
	}
	for _, s := range steps {
		if s.left(p) == 0 {
			continue
		}
		start, done, logged := time.Now(), int64(0), int64(0)
		log.InfoContext(ctx, s.what+": started", "work", s.work, "pending", s.left(p))
		for s.left(p) > 0 {
			page := func(ctx context.Context, tx pgx.Tx, after string) (int, string, error) {
				n, last, err := s.page(ctx, tx, after)
				if err != nil || n == 0 {
					return n, last, err
				}
				return n, last, audit.Append(ctx, tx, audit.Entry{Tenant: audit.AllTenants, Actor: audit.By(ctx, "intake"), Action: s.action,
					Target: audit.Target{Kind: "encryption_key", ID: j.Store.CurrentKeyID()}, Detail: audit.Detail{s.counts: n}})
			}
			n, err := j.round(ctx, page, func(n int) {
				done += int64(n)
				if done-logged >= int64(j.logEvery()) {
					logged = done
					log.InfoContext(ctx, s.what+": progress", "work", s.work, "done", done, "pending", max(0, s.left(p)-done))
				}
			})
			if err == nil {
				p, err = j.Store.PendingSeal(ctx, j.DB)
			}
			if err != nil {
				log.WarnContext(ctx, s.what+": stopped; the next start goes on", "work", s.work, "done", done, "err", err)
				return nil
			}
			j.set(p)
			if n == 0 && s.left(p) > 0 {
				// Every row left was held by another writer (whose save
				// seals it anyway): wait, then go over them again.
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(j.retry()):
				}
			}
		}
		log.InfoContext(ctx, s.what+": done", "work", s.work, "done", done, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// round goes once over the rows left, a page per transaction, telling
// progress after each commit; it returns how many it handled.
func (j *Job) round(ctx context.Context, page func(context.Context, pgx.Tx, string) (int, string, error), progress func(int)) (int, error) {
	total, after := 0, ""
	for {
		var n int
		err := pgx.BeginFunc(ctx, j.DB, func(tx pgx.Tx) error {
			var err error
			n, after, err = page(ctx, tx, after)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if n > 0 {
			progress(n)
		}
		if n < j.batch() {
			return total, nil
		}
	}
}

func (j *Job) set(p store.Pending) {
	if j.Pending == nil {
		return
	}
	j.Pending.WithLabelValues(WorkReseal).Set(float64(p.Unsealed))
	j.Pending.WithLabelValues(WorkRewrap).Set(float64(p.Rewrap))
}

func (j *Job) batch() int {
	if j.Batch > 0 {
		return j.Batch
	}
	return DefaultBatch
}

func (j *Job) logEvery() int {
	if j.LogEvery > 0 {
		return j.LogEvery
	}
	return DefaultLogEvery
}

func (j *Job) retry() time.Duration {
	if j.Retry > 0 {
		return j.Retry
	}
	return DefaultRetry
}

func (j *Job) log() *slog.Logger {
	if j.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return j.Log
}
