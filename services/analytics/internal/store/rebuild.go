package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/postgres"
)

// RollupTables are the tables a replay of the stream makes: the counters
// and the ledgers. A rebuild fills shadow copies of them and swaps them in.
// A migration that adds a table names it here or in KeptTables (a test
// checks that every table of the migrations is in one of the two lists).
// The views over them (customer_members) are made again over the tables
// swapped in (SwapShadow).
var RollupTables = []string{"daily", "monthly", "daily_tenant", "monthly_tenant", "visits", "complaints",
	"services", "customers", "service_coverage", "customer_years", "customer_coverage", "churn_cases", "round_visits"}

// KeptTables are analytics' tables a rebuild does not make again: targets,
// rules, breaches, the rebuild requests, the lease and the stream's origin.
var KeptTables = []string{"targets", "breaches", "incentive_rules", "rebuild_requests", "leases", "stream_origins"}

// consumerTables are the runtime's tables the consumer writes besides the
// rollups: its inbox, its refusals and their dead letters (outbox). A
// rebuild's replay writes shadow copies of them; the swap brings the live
// ones in line with the rollups it puts in place.
var consumerTables = []string{"inbox", "rejected_events", "outbox"}

// Reset empties every rollup and ledger and forgets which events the
// consumer handled, within tx. Only tests use it: a rebuild never empties
// the tables in use (see SwapShadow).
func Reset(ctx context.Context, tx postgres.Querier, consumer string) error {
	if _, err := tx.Exec(ctx, `TRUNCATE `+strings.Join(RollupTables, ", ")+`, rebuild_requests`); err != nil {
		return fmt.Errorf("store: reset rollups: %w", translate(err))
	}
	if _, err := tx.Exec(ctx, `DELETE FROM inbox WHERE consumer = $1`, consumer); err != nil {
		return fmt.Errorf("store: reset inbox: %w", translate(err))
	}
	if _, err := tx.Exec(ctx, `DELETE FROM rejected_events`); err != nil {
		return fmt.Errorf("store: reset rejected events: %w", translate(err))
	}
	return nil
}

// Schemas returns the schema in use (the pool's search_path) and the name
// of the shadow schema a rebuild fills: the same with "_rebuild".
func Schemas(ctx context.Context, db postgres.Querier) (live, shadow string, err error) {
	if err := db.QueryRow(ctx, `SELECT current_schema()`).Scan(&live); err != nil {
		return "", "", fmt.Errorf("store: current schema: %w", translate(err))
	}
	return live, live + "_rebuild", nil
}

func ident(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

// CreateShadow makes the shadow schema afresh (dropping what a failed
// rebuild left): an empty copy of every rollup table, with the live tables'
// columns, constraints, defaults, index names and privileges, and of the consumer's
// inbox, refusals and outbox. It returns the database's time, which the
// swap uses to tell the rebuild requests it satisfies.
func CreateShadow(ctx context.Context, tx pgx.Tx, live, shadow string) (time.Time, error) {
	stmts := []string{`DROP SCHEMA IF EXISTS ` + ident(shadow) + ` CASCADE`, `CREATE SCHEMA ` + ident(shadow)}
	for _, t := range append(append([]string{}, RollupTables...), consumerTables...) {
		stmts = append(stmts, `CREATE TABLE `+ident(shadow, t)+` (LIKE `+ident(live, t)+` INCLUDING ALL)`)
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return time.Time{}, fmt.Errorf("store: create shadow tables: %w", translate(err))
		}
	}
	// LIKE names the copied indexes its own way; give them the live names,
	// so that the tables swapped in are the same as the ones they replace.
	rows, err := tx.Query(ctx, `SELECT s.indexname, l.indexname FROM pg_indexes s JOIN pg_indexes l
  ON l.schemaname = $1 AND l.tablename = s.tablename
 AND regexp_replace(l.indexdef, '^.*? USING ', '') = regexp_replace(s.indexdef, '^.*? USING ', '')
 AND (l.indexdef LIKE 'CREATE UNIQUE %') = (s.indexdef LIKE 'CREATE UNIQUE %')
WHERE s.schemaname = $2 AND s.tablename = ANY($3) AND s.indexname <> l.indexname ORDER BY 1`, live, shadow, RollupTables)
	if err != nil {
		return time.Time{}, fmt.Errorf("store: shadow indexes: %w", translate(err))
	}
	renames, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var p [2]string
		return p, r.Scan(&p[0], &p[1])
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("store: shadow indexes: %w", translate(err))
	}
	for _, r := range renames {
		if _, err := tx.Exec(ctx, `ALTER INDEX `+ident(shadow, r[0])+` RENAME TO `+ident(r[1])); err != nil {
			return time.Time{}, fmt.Errorf("store: name shadow index %s: %w", r[1], translate(err))
		}
	}
	// The privileges granted on the live tables (to a reporting role, say).
	rows, err = tx.Query(ctx, `SELECT 'GRANT ' || a.privilege_type || ' ON ' || quote_ident($2) || '.' || quote_ident(c.relname) || ' TO '
  || CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END
  || CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
WHERE n.nspname = $1 AND c.relname = ANY($3) AND c.relkind = 'r' AND a.grantee <> c.relowner ORDER BY 1`, live, shadow, RollupTables)
	if err != nil {
		return time.Time{}, fmt.Errorf("store: shadow grants: %w", translate(err))
	}
	grants, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return time.Time{}, fmt.Errorf("store: shadow grants: %w", translate(err))
	}
	for _, g := range grants {
		if _, err := tx.Exec(ctx, g); err != nil {
			return time.Time{}, fmt.Errorf("store: shadow grants: %w", translate(err))
		}
	}
	var now time.Time
	if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("store: now: %w", translate(err))
	}
	return now, nil
}

// UseShadow points the rest of tx at the shadow tables: unqualified names
// find the shadow's copies first, and the live schema's other tables (the
// lease) after them. The store's functions then fill the shadow.
func UseShadow(ctx context.Context, tx pgx.Tx, live, shadow string) error {
	if _, err := tx.Exec(ctx, `SELECT set_config('search_path', $1, true)`, ident(shadow)+", "+ident(live)); err != nil {
		return fmt.Errorf("store: use shadow tables: %w", translate(err))
	}
	return nil
}

// AnalyzeShadow gathers the planner's statistics of the shadow tables, so
// that queries plan well on them from the moment they are swapped in.
func AnalyzeShadow(ctx context.Context, db postgres.Querier, shadow string) error {
	for _, t := range append(append([]string{}, RollupTables...), consumerTables...) {
		if _, err := db.Exec(ctx, `ANALYZE `+ident(shadow, t)); err != nil {
			return fmt.Errorf("store: analyze %s: %w", t, translate(err))
		}
	}
	return nil
}

// DropShadow removes the shadow schema and what it holds.
func DropShadow(ctx context.Context, db postgres.Querier, shadow string) error {
	if _, err := db.Exec(ctx, `DROP SCHEMA IF EXISTS `+ident(shadow)+` CASCADE`); err != nil {
		return fmt.Errorf("store: drop shadow tables: %w", translate(err))
	}
	return nil
}

// ClaimEvent writes the inbox row of an event the consumer handles within
// tx; false when the event was handled already.
func ClaimEvent(ctx context.Context, tx postgres.Querier, consumer, eventID string) (bool, error) {
	tag, err := tx.Exec(ctx, `INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, consumer, eventID)
	if err != nil {
		return false, fmt.Errorf("store: claim %s: %w", eventID, translate(err))
	}
	return tag.RowsAffected() == 1, nil
}

// Refused reports whether the event from source was refused already (a row
// in rejected_events).
func Refused(ctx context.Context, db postgres.Querier, source, eventID string) (bool, error) {
	var ok bool
	if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rejected_events WHERE source = $1 AND event_id = $2)`, source, eventID).Scan(&ok); err != nil {
		return false, fmt.Errorf("store: refused %s: %w", eventID, translate(err))
	}
	return ok, nil
}

// Unreplayed counts the events the live tables applied (the consumer's
// live inbox) that the shadow's replay neither applied nor refused, and
// the earliest time one of them was handled: the stream no longer holds
// them. An event the live consumer claimed in the inbox may have been
// applied by the replay without a row, keeping its id in the entry it
// moved instead (a service's event_id, a visit's seen ids: the live
// consumer applied a visit's two VisitPlanned in the other order, or
// claimed events of those subjects before their ids were kept): only when
// the inboxes differ, those ids are looked up too (a scan of the shadow's
// services and visits).
func Unreplayed(ctx context.Context, db postgres.Querier, live, shadow, consumer string) (n int64, earliest time.Time, err error) {
	const notReplayed = ` FROM %s l WHERE l.consumer = $1
AND NOT EXISTS (SELECT 1 FROM %s s WHERE s.consumer = l.consumer AND s.event_id = l.event_id)
AND NOT EXISTS (SELECT 1 FROM %s r WHERE r.event_id = l.event_id)`
	from := fmt.Sprintf(notReplayed, ident(live, "inbox"), ident(shadow, "inbox"), ident(shadow, "rejected_events"))
	var at *time.Time
	if err := db.QueryRow(ctx, `SELECT count(*), min(l.handled_at)`+from, consumer).Scan(&n, &at); err != nil {
		return 0, time.Time{}, fmt.Errorf("store: events not replayed: %w", translate(err))
	}
	if n > 0 {
		err = db.QueryRow(ctx, `SELECT count(*), min(l.handled_at)`+from+`
AND NOT EXISTS (SELECT 1 FROM `+ident(shadow, "services")+` s WHERE s.event_id = l.event_id)
AND NOT EXISTS (SELECT 1 FROM `+ident(shadow, "visits")+` v WHERE v.state->'seen'->>'planned' = l.event_id)
AND NOT EXISTS (SELECT 1 FROM `+ident(shadow, "visits")+` v WHERE v.state->'seen'->>'due' = l.event_id)`, consumer).Scan(&n, &at)
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("store: events not replayed: %w", translate(err))
		}
	}
	if at != nil {
		earliest = *at
	}
	return n, earliest, nil
}

// ErrShapeChanged: a rollup table's columns or indexes differ between the
// live schema and the shadow (a migration ran during the rebuild).
var ErrShapeChanged = errors.New("store: the rollup tables changed during the rebuild")

// SameShape checks that every shadow rollup table has the live one's
// columns (names, types, NOT NULL, in order) and indexes.
func SameShape(ctx context.Context, db postgres.Querier, live, shadow string) error {
	var differ []string
	rows, err := db.Query(ctx, `WITH shape AS (
  SELECT n.nspname AS schema, c.relname AS tbl,
    (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END, ', ' ORDER BY a.attnum)
       FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS cols,
    (SELECT string_agg(i.indexname || ' ' || regexp_replace(i.indexdef, '^.*? USING ', ''), ', ' ORDER BY i.indexname)
       FROM pg_indexes i WHERE i.schemaname = n.nspname AND i.tablename = c.relname) AS idx
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r' AND n.nspname IN ($1, $2) AND c.relname = ANY($3))
SELECT t FROM unnest($3::text[]) t
WHERE (SELECT row(cols, idx) FROM shape WHERE schema = $1 AND tbl = t) IS DISTINCT FROM (SELECT row(cols, idx) FROM shape WHERE schema = $2 AND tbl = t)
ORDER BY 1`, live, shadow, RollupTables)
	if err != nil {
		return fmt.Errorf("store: compare tables: %w", translate(err))
	}
	if differ, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return fmt.Errorf("store: compare tables: %w", translate(err))
	}
	if len(differ) > 0 {
		return fmt.Errorf("%w: %s", ErrShapeChanged, strings.Join(differ, ", "))
	}
	return nil
}

// SwapShadow puts the shadow in place of the live tables within tx, so
// that it all happens at the commit or not at all:
//   - the dead letters of events the replay refused and the live tables had
//     not refused go to the live outbox (the others were published already);
//   - rejected_events keeps the rows of events refused before and again,
//     gains the newly refused ones and loses the ones no longer refused;
//   - the consumer's inbox becomes the replay's (keeping the first handling
//     time of the events handled before);
//   - the rebuild requests made before the rebuild began (since) are done;
//   - every rollup table is replaced by its shadow copy (a rename: readers
//     wait for the commit and then read the new tables), the views over
//     them are made again, and the shadow schema is dropped.
func SwapShadow(ctx context.Context, tx pgx.Tx, live, shadow, consumer string, since time.Time) error {
	type step struct {
		what string
		sql  string
		args []any
	}
	steps := []step{
		{"dead letters", `INSERT INTO ` + ident(live, "outbox") + ` (id, subject, payload, headers)
SELECT o.id, o.subject, o.payload, o.headers FROM ` + ident(shadow, "outbox") + ` o
WHERE NOT EXISTS (SELECT 1 FROM ` + ident(shadow, "rejected_events") + ` r JOIN ` + ident(live, "rejected_events") + ` l
  ON l.source = r.source AND l.event_id = r.event_id WHERE r.id = o.id)
ORDER BY o.seq`, nil},
		{"refusals no longer made", `DELETE FROM ` + ident(live, "rejected_events") + ` l
WHERE NOT EXISTS (SELECT 1 FROM ` + ident(shadow, "rejected_events") + ` r WHERE r.source = l.source AND r.event_id = l.event_id)`, nil},
		{"new refusals", `INSERT INTO ` + ident(live, "rejected_events") + ` SELECT r.* FROM ` + ident(shadow, "rejected_events") + ` r
WHERE NOT EXISTS (SELECT 1 FROM ` + ident(live, "rejected_events") + ` l WHERE l.source = r.source AND l.event_id = r.event_id)`, nil},
		{"first handling times", `UPDATE ` + ident(shadow, "inbox") + ` s SET handled_at = l.handled_at FROM ` + ident(live, "inbox") + ` l
WHERE l.consumer = s.consumer AND l.event_id = s.event_id AND l.handled_at < s.handled_at`, nil},
		{"inbox", `DELETE FROM ` + ident(live, "inbox") + ` WHERE consumer = $1`, []any{consumer}},
		{"inbox", `INSERT INTO ` + ident(live, "inbox") + ` (consumer, event_id, handled_at) SELECT consumer, event_id, handled_at FROM ` + ident(shadow, "inbox"), nil},
		{"rebuild requests", `DELETE FROM ` + ident(live, "rebuild_requests") + ` WHERE requested_at <= $1`, []any{since}},
	}
	lock := make([]string, len(RollupTables))
	for i, t := range RollupTables {
		lock[i] = ident(live, t)
	}
	// All the locks at once, then the renames: readers wait only for these
	// statements and the commit.
	steps = append(steps, step{"lock the rollups", `LOCK TABLE ` + strings.Join(lock, ", ") + ` IN ACCESS EXCLUSIVE MODE`, nil})
	for _, s := range steps {
		if _, err := tx.Exec(ctx, s.sql, s.args...); err != nil {
			return fmt.Errorf("store: swap the rebuilt tables in (%s): %w", s.what, translate(err))
		}
	}
	// The live schema's views over the rollup tables go with them and are
	// made again over the new ones: the same definition (read and run with
	// the same search_path, so the same names find the new tables) and
	// privileges.
	rows, err := tx.Query(ctx, `SELECT v.relname, pg_get_viewdef(v.oid),
  coalesce((SELECT array_agg('GRANT ' || a.privilege_type || ' ON ' || quote_ident($1) || '.' || quote_ident(v.relname) || ' TO '
    || CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END
    || CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END ORDER BY 1)
    FROM aclexplode(v.relacl) a WHERE a.grantee <> v.relowner), '{}')
FROM pg_class v JOIN pg_namespace n ON n.oid = v.relnamespace
WHERE n.nspname = $1 AND v.relkind = 'v' AND EXISTS (
  SELECT 1 FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
    JOIN pg_class t ON t.oid = d.refobjid
  WHERE r.ev_class = v.oid AND t.relnamespace = n.oid AND t.relname = ANY($2))
ORDER BY 1`, live, RollupTables)
	if err != nil {
		return fmt.Errorf("store: swap the rebuilt tables in (views): %w", translate(err))
	}
	type view struct {
		name, def string
		grants    []string
	}
	views, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (view, error) {
		var v view
		return v, r.Scan(&v.name, &v.def, &v.grants)
	})
	if err != nil {
		return fmt.Errorf("store: swap the rebuilt tables in (views): %w", translate(err))
	}
	steps = steps[:0]
	for _, v := range views {
		steps = append(steps, step{"drop view " + v.name, `DROP VIEW ` + ident(live, v.name), nil})
	}
	for _, t := range RollupTables {
		steps = append(steps,
			step{"drop " + t, `DROP TABLE ` + ident(live, t), nil},
			step{"move " + t, `ALTER TABLE ` + ident(shadow, t) + ` SET SCHEMA ` + ident(live), nil})
	}
	for _, v := range views {
		steps = append(steps, step{"view " + v.name, `CREATE VIEW ` + ident(live, v.name) + ` AS ` + v.def, nil})
		for _, g := range v.grants {
			steps = append(steps, step{"view " + v.name, g, nil})
		}
	}
	for _, s := range steps {
		if _, err := tx.Exec(ctx, s.sql, s.args...); err != nil {
			return fmt.Errorf("store: swap the rebuilt tables in (%s): %w", s.what, translate(err))
		}
	}
	return DropShadow(ctx, tx, shadow)
}

// RecordStreamOrigin remembers when the stream the figures are built from
// was created, the first time it is seen.
func RecordStreamOrigin(ctx context.Context, db postgres.Querier, stream string, created time.Time) error {
	if _, err := db.Exec(ctx, `INSERT INTO stream_origins (stream, created) VALUES ($1, $2) ON CONFLICT (stream) DO NOTHING`, stream, created); err != nil {
		return fmt.Errorf("store: record stream origin: %w", translate(err))
	}
	return nil
}

// StreamOrigin returns when the stream was created as first recorded; ok
// is false when it was never recorded.
func StreamOrigin(ctx context.Context, db postgres.Querier, stream string) (created time.Time, ok bool, err error) {
	err = translate(db.QueryRow(ctx, `SELECT created FROM stream_origins WHERE stream = $1`, stream).Scan(&created))
	if errors.Is(err, ErrNotFound) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: stream origin: %w", err)
	}
	return created, true, nil
}
