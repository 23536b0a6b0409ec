// Package postgres opens the pgx pool of a service, confined to the service's
// own schema, and applies the service's embedded migrations.
package postgres

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/huifang/huifang/pkg/loop"
)

// Migrations is a named set of migration files (NNN_name.sql at the root of
// FS). Versions are counted per set, so shared packages and a service each
// number their own files.
type Migrations struct {
	Set string
	FS  fs.FS
}

// DefaultMaxConns is how many connections a service's pool opens at most
// unless DATABASE_URL sets pool_max_conns: each consumer worker holds one
// for a whole batch, and the relay, the timers, the health check and the
// API need theirs beside them (pgx's own default, max(4, CPUs), starved
// the health check and the relay of a 2-core intake under load).
const DefaultMaxConns = 12

// customPlans has every statement planned for its parameters and the
// tables' sizes at each execution (plan_cache_mode force_custom_plan)
// unless the URL sets plan_cache_mode itself. pgx prepares its statements,
// and Postgres switches a prepared statement to a generic plan after five
// executions: on tables that were empty or small then (a fresh schema, a
// burst after a migration, before autovacuum analyzed them) that plan
// reads whole tables for ever after. Custom plans cost a few tens of
// microseconds of planning each; intake's ingest benchmark went from
// 228–260 to 407–428 events/s with them (docs/benchmarks.md).
func customPlans(params map[string]string) {
	if _, set := params["plan_cache_mode"]; set || strings.Contains(params["options"], "plan_cache_mode") {
		return
	}
	params["plan_cache_mode"] = "force_custom_plan"
}

// Open connects to url with search_path set to schema, creates the schema if
// needed and applies the migration sets in order. It waits for the database
// with backoff until ctx ends, so a service may start before Postgres does.
func Open(ctx context.Context, log *slog.Logger, url, schema string, sets ...Migrations) (*pgxpool.Pool, error) {
	if !validIdent(schema) {
		return nil, fmt.Errorf("postgres: schema %q is not a plain identifier", schema)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse DATABASE_URL: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	customPlans(cfg.ConnConfig.RuntimeParams)
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	cfg.ConnConfig.Tracer = tracer{}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: pool: %w", err)
	}
	if err := waitReady(ctx, log, pool); err != nil {
		pool.Close()
		return nil, err
	}
	for _, set := range sets {
		if err := Migrate(ctx, pool, schema, set); err != nil {
			pool.Close()
			return nil, err
		}
	}
	return pool, nil
}

func waitReady(ctx context.Context, log *slog.Logger, pool *pgxpool.Pool) error {
	delay := 100 * time.Millisecond
	trouble := &loop.Trouble{Log: log, What: "postgres"}
	for {
		err := pool.Ping(ctx)
		if err == nil {
			trouble.OK(ctx)
			return nil
		}
		trouble.Fail(ctx, err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres: not reachable: %w", err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

func validIdent(s string) bool { return identRE.MatchString(s) }

type migration struct {
	version int
	name    string
	sql     string
}

func readMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("postgres: read migrations: %w", err)
	}
	var out []migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		var num string
		for _, r := range e.Name() {
			if r < '0' || r > '9' {
				break
			}
			num += string(r)
		}
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("postgres: migration %s: name must start with its number", e.Name())
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("postgres: migrations %s and %s share number %d", prev, e.Name(), v)
		}
		seen[v] = e.Name()
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("postgres: read %s: %w", e.Name(), err)
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// Migrate applies, in order and each in its own transaction, the migrations
// of set not yet recorded in schema.schema_migrations. An advisory lock keeps
// replicas that start together from applying the same file twice.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string, set Migrations) error {
	list, err := readMigrations(set.FS)
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: acquire: %w", err)
	}
	defer conn.Release()
	lockKey := "huifang.migrate." + schema
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext($1))`, lockKey); err != nil {
		return fmt.Errorf("postgres: migration lock: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext($1))`, lockKey)
	}()
	setup := fmt.Sprintf(`CREATE SCHEMA IF NOT EXISTS %[1]s;
CREATE TABLE IF NOT EXISTS %[1]s.schema_migrations (
  set_name text NOT NULL,
  version int NOT NULL,
  name text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (set_name, version)
)`, schema)
	if _, err := conn.Exec(ctx, setup); err != nil {
		return fmt.Errorf("postgres: create schema %s: %w", schema, err)
	}
	applied := 0
	for _, m := range list {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var done bool
			if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT EXISTS (SELECT 1 FROM %s.schema_migrations WHERE set_name = $1 AND version = $2)`, schema), set.Set, m.version).Scan(&done); err != nil {
				return err
			}
			if done {
				return nil
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL search_path = %s", schema)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.schema_migrations (set_name, version, name) VALUES ($1, $2, $3)`, schema), set.Set, m.version, m.name)
			if err == nil {
				applied++
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("postgres: migration %s/%s: %w", set.Set, m.name, err)
		}
	}
	if applied == 0 {
		return nil
	}
	// Fresh statistics for what the migrations made or changed, so that the
	// first queries are planned on them rather than on guesses (autovacuum
	// comes only after enough rows changed).
	if _, err := conn.Exec(ctx, fmt.Sprintf(`DO $$DECLARE t text; BEGIN
  FOR t IN SELECT format('%%I.%%I', schemaname, tablename) FROM pg_tables WHERE schemaname = %s LOOP EXECUTE 'ANALYZE ' || t; END LOOP;
END$$`, quoteLiteral(schema))); err != nil {
		return fmt.Errorf("postgres: analyze %s after migrations: %w", schema, err)
	}
	return nil
}

// quoteLiteral quotes s as an SQL string literal (an identifier validIdent
// accepted: letters, digits and '_').
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// IsUniqueViolation tells whether err is Postgres's unique_violation.
func IsUniqueViolation(err error) bool { return Code(err) == CodeUniqueViolation }
