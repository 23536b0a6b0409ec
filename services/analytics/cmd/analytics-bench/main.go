// Command analytics-bench measures the query latency of analytics' figures
// over rollups worth 100 million follow-up records. It creates a database
// of its own on the server at DATABASE_URL, generates the rollup rows
// directly in SQL (three years of days × 10 org units × 4 agents each × 3
// service types × every metric, with counts that add up to the records),
// runs each API's query many times with random periods and filters through
// the same code the API runs, and prints p50/p95/p99 as Markdown.
//
//	DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable \
//	  go run ./cmd/analytics-bench -records 100000000 -runs 200
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/inbox"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/analytics/internal/app"
	"github.com/huifang/huifang/services/analytics/internal/figures"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/satisfaction"
	"github.com/huifang/huifang/services/analytics/migrations"
)

const (
	tenant   = "bench"
	orgUnits = 10
	agents   = 4 // per org unit
	days     = 1096
)

var first = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)

func main() {
	records := flag.Int64("records", 100_000_000, "follow-up records the rollups are worth")
	runs := flag.Int("runs", 200, "runs of each query")
	keep := flag.Bool("keep", false, "keep the database afterwards")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(context.Background(), log, *records, *runs, *keep); err != nil {
		log.Error("bench failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, records int64, runs int, keep bool) error {
	admin := os.Getenv("DATABASE_URL")
	if admin == "" {
		return fmt.Errorf("DATABASE_URL is not set")
	}
	const db = "huifang_bench_analytics"
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
		return fmt.Errorf("drop: %w", err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if !keep {
		defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+db) }()
	}
	u, err := url.Parse(admin)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	u.Path = "/" + db
	pool, err := postgres.Open(ctx, log, u.String(), "analytics", outbox.Migrations(), inbox.Migrations(), audit.Migrations(), postgres.Migrations{Set: "analytics", FS: migrations.FS})
	if err != nil {
		return err
	}
	defer pool.Close()

	start := time.Now()
	rows, err := generate(ctx, pool, records)
	if err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE daily, monthly, daily_tenant, monthly_tenant"); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	var size string
	if err := pool.QueryRow(ctx, `SELECT pg_size_pretty(pg_total_relation_size('daily') + pg_total_relation_size('monthly') + pg_total_relation_size('daily_tenant') + pg_total_relation_size('monthly_tenant'))`).Scan(&size); err != nil {
		return err
	}
	gen := time.Since(start)

	a := &app.App{DB: pool}
	var total int64
	if err := pool.QueryRow(ctx, `SELECT sum(n) FROM daily WHERE metric = $1`, rollup.MetricDue).Scan(&total); err != nil {
		return err
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	month := func() (time.Time, time.Time) {
		m := first.AddDate(0, rnd.IntN(35), 0)
		return m, m.AddDate(0, 1, 0)
	}
	org := func() string { return fmt.Sprintf("org-%d", 1+rnd.IntN(orgUnits)) }
	queries := []struct {
		name string
		fn   func() error
	}{
		{"GetSatisfaction: every aspect + NPS, one month, tenant", func() error {
			f, to := month()
			_, err := a.Satisfaction(ctx, app.Scope{Tenant: tenant, From: f, To: to}, satisfaction.Overall)
			return err
		}},
		{"GetCoverage: one month, one org unit", func() error {
			f, to := month()
			_, err := a.Coverage(ctx, app.Scope{Tenant: tenant, From: f, To: to, Filter: rollup.Dims{OrgUnit: org()}})
			return err
		}},
		{"GetCoverage: one year, tenant", func() error {
			y := first.AddDate(rnd.IntN(2), 0, 0)
			_, err := a.Coverage(ctx, app.Scope{Tenant: tenant, From: y, To: y.AddDate(1, 0, 0)})
			return err
		}},
		{"GetCoverage: all time (3 years), tenant", func() error {
			_, err := a.Coverage(ctx, app.Scope{Tenant: tenant})
			return err
		}},
		{"GetTimeliness: one month, one agent", func() error {
			f, to := month()
			o := 1 + rnd.IntN(orgUnits)
			_, err := a.Timeliness(ctx, app.Scope{Tenant: tenant, From: f, To: to, Filter: rollup.Dims{AgentID: fmt.Sprintf("agent-%d-%d", o, 1+rnd.IntN(agents))}})
			return err
		}},
		{"GetAgentScorecards: one month, tenant (40 agents)", func() error {
			f, to := month()
			_, err := a.Scorecards(ctx, app.Scope{Tenant: tenant, From: f, To: to})
			return err
		}},
		{"GetTrend: coverage by day over 90 days", func() error {
			f, _ := month()
			_, err := a.Trend(ctx, app.Scope{Tenant: tenant, From: f, To: f.AddDate(0, 0, 90)}, figures.Coverage, figures.Day)
			return err
		}},
		{"GetTrend: satisfaction.overall by month over 1 year", func() error {
			y := first.AddDate(rnd.IntN(2), 0, 0)
			_, err := a.Trend(ctx, app.Scope{Tenant: tenant, From: y, To: y.AddDate(1, 0, 0)}, figures.SatisfactionPrefix+satisfaction.Overall, figures.Month)
			return err
		}},
		{"GetProblemBreakdown: one month, tenant", func() error {
			f, to := month()
			_, err := a.Problems(ctx, app.Scope{Tenant: tenant, From: f, To: to})
			return err
		}},
		{"GenerateReport: one month + 5 previous, one org unit (CSV)", func() error {
			f, to := month()
			r, err := a.Report(ctx, app.ReportOf{Tenant: tenant, OrgUnit: org(), From: f, To: to, Previous: 5})
			if err != nil {
				return err
			}
			_, err = r.CSV()
			return err
		}},
	}
	var out strings.Builder
	fmt.Fprintf(&out, "# analytics: query latency over rollups worth %d follow-up records\n\n", total)
	fmt.Fprintf(&out, "Rollup rows: %d in `daily`, `monthly`, `daily_tenant` and `monthly_tenant` (%s with their indexes), generated in SQL in %s: %d days × %d org units × %d agents × 3 service types × every metric.\n",
		rows, size, gen.Round(time.Second), days, orgUnits, agents)
	fmt.Fprintf(&out, "Each query runs %d times with a random period (and org unit or agent) through `internal/app`, the code the API runs; latency is wall time from the Go client, Postgres on the same machine.\n\n", runs)
	fmt.Fprintf(&out, "| query | p50 | p95 | p99 | max |\n| --- | --- | --- | --- | --- |\n")
	for _, q := range queries {
		lat := make([]time.Duration, 0, runs)
		for range runs {
			s := time.Now()
			if err := q.fn(); err != nil {
				return fmt.Errorf("%s: %w", q.name, err)
			}
			lat = append(lat, time.Since(s))
		}
		slices.Sort(lat)
		p := func(q float64) string { return ms(lat[min(len(lat)-1, int(q*float64(len(lat))))]) }
		fmt.Fprintf(&out, "| %s | %s | %s | %s | %s |\n", q.name, p(0.50), p(0.95), p(0.99), ms(lat[len(lat)-1]))
		log.Info("measured", "query", q.name)
	}
	fmt.Print(out.String())
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// generate writes the rollup rows: for each day, org unit, agent and
// service type, a number of due visits around records / (days × combos), and
// each metric as a fixed share of them. It returns the number of rows.
func generate(ctx context.Context, pool *pgxpool.Pool, records int64) (int64, error) {
	combos := int64(days * orgUnits * agents * 3)
	base := records / combos
	// metric, aspect, category, share of the due visits in per mille.
	shares := `(VALUES ('visit.due','','',1000), ('visit.done','','',920), ('visit.returned','','',700), ('visit.with_deadline','','',1000),
 ('visit.on_time','','',850), ('visit.in_time','','',860), ('visit.with_base','','',950), ('visit.within_48h','','',800),
 ('visit.unreachable','','',30), ('visit.attempted','','',970), ('visit.contacted','','',900), ('record.logged','','',920),
 ('service.eligible','','',600), ('service.covered','','',580),
 ('nps.promoter','','',200), ('nps.passive','','',100), ('nps.detractor','','',50),
 ('problem','','product_quality',20), ('problem','','service_quality',15), ('problem','','other',5),
 ('vote.satisfied','overall','',500), ('vote.fairly_satisfied','overall','',150), ('vote.unsatisfied','overall','',50),
 ('vote.satisfied','staff_attitude','',520), ('vote.fairly_satisfied','staff_attitude','',130), ('vote.unsatisfied','staff_attitude','',50),
 ('vote.satisfied','efficiency','',480), ('vote.fairly_satisfied','efficiency','',160), ('vote.unsatisfied','efficiency','',60),
 ('vote.satisfied','product_quality','',490), ('vote.fairly_satisfied','product_quality','',150), ('vote.unsatisfied','product_quality','',60)) AS m(metric, aspect, category, share)`
	var n int64
	// One statement per year keeps each transaction moderate.
	for y := 0; y < 3; y++ {
		from := first.AddDate(y, 0, 0)
		to := from.AddDate(1, 0, 0)
		if end := first.AddDate(0, 0, days); to.After(end) {
			to = end
		}
		tag, err := pool.Exec(ctx, `INSERT INTO daily (tenant_id, metric, day, org_unit, policy_id, service_type, product_category, channel, agent_id, aspect, category, n, total)
SELECT 'bench', m.metric, d::date, 'org-' || o, 'policy-' || st, st, CASE st WHEN 'purchase' THEN 'washer' WHEN 'installation' THEN 'fridge' ELSE 'tv' END,
  'CHANNEL_PHONE', 'agent-' || o || '-' || a, m.aspect, m.category,
  (($3::bigint + ((o * 7 + a * 13 + extract(doy FROM d)::int) % 21) - 10) * m.share / 1000), 0
FROM generate_series($1::timestamptz, $2::timestamptz - interval '1 day', interval '1 day') d,
  generate_series(1, 10) o, generate_series(1, 4) a, unnest(ARRAY['purchase', 'installation', 'repair']) st, `+shares,
			from, to, base)
		if err != nil {
			return 0, fmt.Errorf("generate %d: %w", from.Year(), err)
		}
		n += tag.RowsAffected()
	}
	// The monthly counters, as the consumer keeps them next to the daily ones.
	tag, err := pool.Exec(ctx, `INSERT INTO monthly (tenant_id, metric, day, org_unit, policy_id, service_type, product_category, channel, agent_id, aspect, category, n, total)
SELECT tenant_id, metric, date_trunc('month', day)::date, org_unit, policy_id, service_type, product_category, channel, agent_id, aspect, category, sum(n), sum(total)
FROM daily GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11`)
	if err != nil {
		return 0, fmt.Errorf("generate monthly: %w", err)
	}
	n += tag.RowsAffected()
	// The tenant totals: every dimension but aspect and category summed away.
	for _, t := range [][2]string{{"daily_tenant", "daily"}, {"monthly_tenant", "monthly"}} {
		tag, err := pool.Exec(ctx, `INSERT INTO `+t[0]+` (tenant_id, metric, day, aspect, category, n, total)
SELECT tenant_id, metric, day, aspect, category, sum(n), sum(total) FROM `+t[1]+` GROUP BY 1, 2, 3, 4, 5`)
		if err != nil {
			return 0, fmt.Errorf("generate %s: %w", t[0], err)
		}
		n += tag.RowsAffected()
	}
	return n, nil
}
