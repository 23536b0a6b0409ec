package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/pkg/postgres"
)

// The pool and a transaction are both a DB; a use case begun on a
// transaction shares its commit (a savepoint), and its failure rolls back
// only its own part.
func TestDBIsPoolOrTransaction(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	insert := func(db postgres.DB, id int) error {
		return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO t VALUES ($1)`, id)
			return err
		})
	}
	if err := insert(pool, 1); err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := insert(tx, 2); err != nil {
			return err
		}
		dup := insert(tx, 1)
		if postgres.Code(dup) != postgres.CodeUniqueViolation || !postgres.IsUniqueViolation(dup) || postgres.Constraint(dup) != "t_pkey" {
			return fmt.Errorf("want a unique violation of t_pkey, got %v", dup)
		}
		return nil // the savepoint of the failed insert is rolled back, the rest commits
	})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows = %d, %v; want 2", n, err)
	}
	if postgres.Code(errors.New("not from Postgres")) != "" || postgres.Constraint(nil) != "" {
		t.Error("Code and Constraint of a non-Postgres error must be empty")
	}
}

// A database that is away is transient; a statement the server refused is not.
func TestIsTransient(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	_, syntax := pool.Exec(ctx, `SELEC 1`)
	if syntax == nil || postgres.IsTransient(syntax) {
		t.Fatalf("a syntax error is not transient: %v", syntax)
	}
	_, terminated := pool.Exec(ctx, `SELECT pg_terminate_backend(pg_backend_pid())`)
	if !postgres.IsTransient(terminated) {
		t.Fatalf("a terminated connection is transient: %v (%T)", terminated, terminated)
	}
	away, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer away.Close()
	_, refused := away.Exec(ctx, `SELECT 1`)
	if !postgres.IsTransient(refused) {
		t.Fatalf("a refused connection is transient: %v (%T)", refused, refused)
	}
	if postgres.IsTransient(nil) || postgres.IsTransient(errors.New("a bug")) {
		t.Fatal("nil and plain errors are not transient")
	}
}
