// Command scheduler-bench measures the scheduler's planning throughput and
// firing rate with a growing backlog of pending visits (100k, 1M, 10M by
// default), in a database of its own that it drops at the end. The backlog is
// loaded with generate_series; the firing rate is measured on a fixed set of
// due visits on top of it, with the claim query's plan and buffer counts, to
// show that the scan cost does not grow with the backlog.
//
//	DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable \
//	  go run ./cmd/scheduler-bench -sizes 100000,1000000,10000000
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/migrations"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(context.Background(), log); err != nil {
		log.Error("bench failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger) error {
	sizes := flag.String("sizes", "100000,1000000,10000000", "backlog sizes (pending visits due later), ascending")
	due := flag.Int("due", 20000, "due visits fired at each size")
	batch := flag.Int("batch", 500, "FIRE_BATCH")
	plans := flag.Int("plans", 2000, "services planned (one transaction each, as the consumer does) at each size")
	keep := flag.Bool("keep", false, "keep the bench database")
	rounds := flag.Int("rounds", 3, "firing rounds at each size (the median rate is reported, with the range)")
	flag.Parse()
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		return fmt.Errorf("DATABASE_URL is required")
	}
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer admin.Close(ctx)
	db := fmt.Sprintf("huifang_scheduler_bench_%d", os.Getpid())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	if !*keep {
		defer func() {
			if _, err := admin.Exec(context.Background(), "DROP DATABASE "+db+" WITH (FORCE)"); err != nil {
				log.Error("drop database", "err", err)
			}
		}()
	}
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	u.Path = "/" + db
	pool, err := postgres.Open(ctx, log, u.String(), "scheduler", outbox.Migrations(), inbox.Migrations(), audit.Migrations(), postgres.Migrations{Set: "scheduler", FS: migrations.FS})
	if err != nil {
		return err
	}
	defer pool.Close()
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	a := &app.App{DB: pool, Now: func() time.Time { return now }}
	if err := a.EnsureBuiltins(ctx); err != nil {
		return err
	}

	fmt.Printf("| pending backlog | load + index (s) | fired | firing rate, median (range) of rounds (visits/s) | claim query: plan | shared buffers hit+read | claim query time (ms) | planning, 1 tx/service (services/s) | planning, 100/tx (services/s) |\n")
	fmt.Printf("| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |\n")
	loaded := 0
	for _, s := range strings.Split(*sizes, ",") {
		size, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("sizes: %w", err)
		}
		start := time.Now()
		// Indexes are dropped for the bulk load and rebuilt after (as a restore would do).
		rebuild, err := dropIndexes(ctx, pool)
		if err != nil {
			return err
		}
		// The backlog: visits due from 2030 on, one a second, 100k customers.
		if _, err := pool.Exec(ctx, `INSERT INTO planned_visits (id, tenant_id, service_id, customer_id, policy_id, policy_version, step, channel,
  due_at, deadline, nominal_at, status, reason, service_type, service_completed_at)
SELECT 'b-' || g, 'default', 'bs-' || g, 'bc-' || (g % 100000), 'builtin-appliance-purchase', 1, 0, 1,
  timestamptz '2030-01-01' + g * interval '1 second', timestamptz '2030-01-03' + g * interval '1 second', timestamptz '2030-01-01' + g * interval '1 second',
  'planned', 'bench backlog', 'purchase', timestamptz '2026-11-01'
FROM generate_series($1::bigint + 1, $2::bigint) g`, loaded, size); err != nil {
			return fmt.Errorf("load backlog: %w", err)
		}
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL maintenance_work_mem = '512MB'`); err != nil {
				return err
			}
			for _, q := range rebuild {
				if _, err := tx.Exec(ctx, q); err != nil {
					return fmt.Errorf("%s: %w", q, err)
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("rebuild indexes: %w", err)
		}
		if _, err := pool.Exec(ctx, `VACUUM ANALYZE planned_visits`); err != nil {
			return fmt.Errorf("analyze: %w", err)
		}
		loadSecs := time.Since(start).Seconds()
		loaded = size

		// Planning throughput: one transaction per service, as the consumer runs it.
		pstart := time.Now()
		for i := range *plans {
			in, err := purchase(fmt.Sprintf("p-%d-%d", size, i), fmt.Sprintf("pc-%d", i), now.Add(400*24*time.Hour))
			if err != nil {
				return err
			}
			if _, err := a.PlanService(ctx, in); err != nil {
				return err
			}
		}
		planRate := float64(*plans) / time.Since(pstart).Seconds()
		// Planning in transactions of 100 services: what the planner itself costs, without a commit per event.
		bstart := time.Now()
		for i := 0; i < *plans; i += 100 {
			if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				for j := i; j < min(i+100, *plans); j++ {
					in, err := purchase(fmt.Sprintf("pb-%d-%d", size, j), fmt.Sprintf("pbc-%d", j), now.Add(400*24*time.Hour))
					if err != nil {
						return err
					}
					if _, err := a.PlanServiceTx(ctx, tx, in); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				return err
			}
		}
		batchRate := float64(*plans) / time.Since(bstart).Seconds()

		var rates []float64
		var plan string
		var bufs int
		var ms float64
		fired := 0
		for r := range *rounds {
			// The due visits, on top of the backlog.
			if _, err := pool.Exec(ctx, `INSERT INTO planned_visits (id, tenant_id, service_id, customer_id, customer, policy_id, policy_version, step, channel,
  due_at, deadline, nominal_at, status, reason, service_type, service_completed_at)
SELECT 'd-' || $1::bigint || '-' || $4::int || '-' || g, 'default', 'ds-' || $1::bigint || '-' || $4::int || '-' || g, 'dc-' || g, '{"id":"x","phone":"+8613800138000"}', 'builtin-appliance-purchase', 1, 0, 1,
  $2::timestamptz - g * interval '1 millisecond', $2::timestamptz + interval '2 days', $2::timestamptz, 'planned', 'bench due', 'purchase', timestamptz '2026-11-01'
FROM generate_series(1, $3::bigint) g`, size, now, *due, r); err != nil {
				return fmt.Errorf("load due: %w", err)
			}
			if _, err := pool.Exec(ctx, `ANALYZE planned_visits`); err != nil {
				return fmt.Errorf("analyze: %w", err)
			}
			if plan, bufs, ms, err = explainClaim(ctx, pool, now, *batch); err != nil {
				return err
			}
			fstart := time.Now()
			for {
				n, err := a.FireDue(ctx, *batch)
				if err != nil {
					return err
				}
				fired += n
				if n < *batch {
					break
				}
			}
			rates = append(rates, float64(*due)/time.Since(fstart).Seconds())
		}
		slices.Sort(rates)
		rate := rates[len(rates)/2]
		rateRange := fmt.Sprintf("%.0f (%.0f–%.0f)", rate, rates[0], rates[len(rates)-1])
		fmt.Printf("| %d | %.0f | %d | %s | %s | %d | %.2f | %.0f | %.0f |\n", size, loadSecs, fired, rateRange, plan, bufs, ms, planRate, batchRate)
	}
	return nil
}

// purchase is a completed purchase of a customer, as the ServiceCompleted consumer hands it to the app.
func purchase(serviceID, customerID string, at time.Time) (app.Completed, error) {
	customer, err := app.CustomerFrom(&typesv1.Customer{Id: customerID, Phone: "+8613800138000"})
	if err != nil {
		return app.Completed{}, err
	}
	return app.Completed{Customer: customer, Service: policy.Service{Tenant: "default", ID: serviceID, Type: "purchase",
		CompletedAt: at, CustomerID: customerID}}, nil
}

// dropIndexes drops the indexes and unique constraints of planned_visits and
// returns the statements that rebuild them.
func dropIndexes(ctx context.Context, pool interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}) ([]string, error) {
	rows, err := pool.Query(ctx, `SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = 'planned_visits'::regclass AND contype IN ('p', 'u')`)
	if err != nil {
		return nil, fmt.Errorf("constraints: %w", err)
	}
	type def struct{ name, sql string }
	cons, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (def, error) {
		var d def
		return d, r.Scan(&d.name, &d.sql)
	})
	if err != nil {
		return nil, fmt.Errorf("constraints: %w", err)
	}
	rows, err = pool.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes i WHERE tablename = 'planned_visits' AND schemaname = current_schema()
AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)`)
	if err != nil {
		return nil, fmt.Errorf("indexes: %w", err)
	}
	idx, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (def, error) {
		var d def
		return d, r.Scan(&d.name, &d.sql)
	})
	if err != nil {
		return nil, fmt.Errorf("indexes: %w", err)
	}
	var rebuild []string
	for _, c := range cons {
		if _, err := pool.Exec(ctx, `ALTER TABLE planned_visits DROP CONSTRAINT `+c.name); err != nil {
			return nil, fmt.Errorf("drop %s: %w", c.name, err)
		}
		rebuild = append(rebuild, `ALTER TABLE planned_visits ADD CONSTRAINT `+c.name+` `+c.sql)
	}
	for _, i := range idx {
		if _, err := pool.Exec(ctx, `DROP INDEX `+i.name); err != nil {
			return nil, fmt.Errorf("drop %s: %w", i.name, err)
		}
		rebuild = append(rebuild, i.sql)
	}
	return rebuild, nil
}

// explainClaim runs the claim query under EXPLAIN ANALYZE (rolled back) and
// returns the access path, the shared buffers it touched and its time.
func explainClaim(ctx context.Context, pool interface {
	Begin(context.Context) (pgx.Tx, error)
}, now time.Time, limit int) (string, int, float64, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return "", 0, 0, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var doc []map[string]any
	if err := tx.QueryRow(ctx, `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT id FROM planned_visits WHERE status = 'planned' AND due_at <= $1
ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED`, now, limit).Scan(&doc); err != nil {
		return "", 0, 0, fmt.Errorf("explain: %w", err)
	}
	var scans []string
	bufs := 0
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		if t, ok := n["Node Type"].(string); ok && strings.Contains(t, "Scan") {
			scans = append(scans, fmt.Sprintf("%s on %v", t, n["Index Name"]))
		}
		for _, c := range asList(n["Plans"]) {
			walk(c)
		}
	}
	top := doc[0]["Plan"].(map[string]any)
	walk(top)
	for _, k := range []string{"Shared Hit Blocks", "Shared Read Blocks"} {
		if v, ok := top[k].(float64); ok {
			bufs += int(v)
		}
	}
	ms, _ := doc[0]["Execution Time"].(float64)
	return strings.Join(scans, ", "), bufs, ms, nil
}

func asList(v any) []map[string]any {
	l, _ := v.([]any)
	out := make([]map[string]any, 0, len(l))
	for _, x := range l {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}
