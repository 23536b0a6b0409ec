package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/intake/internal/app"
	"github.com/huifang/huifang/services/intake/internal/privacy"
	"github.com/huifang/huifang/services/intake/internal/store"
	"github.com/huifang/huifang/services/intake/internal/tier"
	"github.com/huifang/huifang/services/intake/migrations"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

type bundle struct {
	ctx  context.Context
	pool *pgxpool.Pool
	app  *app.App
}

func setup(t *testing.T) bundle {
	t.Helper()
	pool := servicetest.Pool(t, "intake", migrations.FS)
	cipher, err := privacy.New(privacy.DevKeys, privacy.DevHashKey)
	require.NoError(t, err)
	rules, err := tier.Parse(tier.DefaultRules)
	require.NoError(t, err)
	a := &app.App{DB: pool, Store: &store.Store{Cipher: cipher}, Rules: rules, Now: func() time.Time { return now }, Log: servicetest.Logger()}
	return bundle{ctx: context.Background(), pool: pool, app: a}
}

func event(t *testing.T, js string) *eventsv1.ServiceCompleted {
	t.Helper()
	ev := &eventsv1.ServiceCompleted{}
	require.NoError(t, protojson.Unmarshal([]byte(js), ev))
	return ev
}

func count(t *testing.T, q postgres.Querier, sql string) int {
	t.Helper()
	var n int
	require.NoError(t, q.QueryRow(context.Background(), sql).Scan(&n))
	return n
}

const repair = `{"source_system":"erp","source_event_id":"e-1","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","staff_id":"s-1","customer":{"external_id":"c-1","phone":"+8613800000001","referred_by":"c-0"}}`

// IngestServiceTx joins the caller's transaction: everything it writes (the
// customer, the service, ServiceCompleted and CustomerUpdated in the outbox)
// is seen in it and goes with its rollback.
func TestIngestServiceTxRollsBackWithTheCaller(t *testing.T) {
	b := setup(t)
	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	out, err := b.app.IngestServiceTx(b.ctx, tx, app.IngestService{Event: event(t, repair)})
	require.NoError(t, err)
	require.NotEmpty(t, out.ServiceID)
	require.Equal(t, 1, count(t, tx, `SELECT count(*) FROM services`))
	require.Equal(t, 1, count(t, tx, `SELECT count(*) FROM customers`))
	require.Equal(t, 2, count(t, tx, `SELECT count(*) FROM outbox`), "ServiceCompleted and CustomerUpdated")
	require.NoError(t, tx.Rollback(b.ctx))
	for _, table := range []string{"services", "customers", "outbox"} {
		require.Zero(t, count(t, b.pool, `SELECT count(*) FROM `+table), table)
	}

	// Committed by the caller, it is there once.
	require.NoError(t, pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		_, err := b.app.IngestServiceTx(b.ctx, tx, app.IngestService{Event: event(t, repair)})
		return err
	}))
	require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM services`))
}

// An app whose DB is a transaction runs its commands in savepoints of it:
// a batch of commands shares one commit, or one rollback.
func TestCommandsShareTheCallersTransaction(t *testing.T) {
	b := setup(t)
	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	inTx := *b.app
	inTx.DB = tx
	out, err := inTx.IngestService(b.ctx, app.IngestService{Event: event(t, repair), Source: "grpc"})
	require.NoError(t, err)
	_, err = inTx.SetCustomerOwners(b.ctx, app.SetCustomerOwners{Tenant: "default", CustomerID: out.CustomerID, OwnerIDs: []string{"s-1", "s-2"}})
	require.NoError(t, err)
	imp, err := inTx.ImportCustomers(b.ctx, app.ImportCustomers{Records: []app.ImportRecord{{Line: 1, Customer: &typesv1.Customer{ExternalId: "c-0", Phone: "+8613800000000"}}}})
	require.NoError(t, err)
	require.Equal(t, 1, imp.Imported)
	require.Equal(t, 2, count(t, tx, `SELECT count(*) FROM customers`))
	require.NoError(t, tx.Rollback(b.ctx))
	require.Zero(t, count(t, b.pool, `SELECT count(*) FROM customers`))
	require.Zero(t, count(t, b.pool, `SELECT count(*) FROM outbox`))
}

// A refused event: the Tx form returns the *invalid.Error and writes nothing
// (the inbox dead-letters it); IngestService records it in rejected_events.
func TestRefusedEvent(t *testing.T) {
	b := setup(t)
	bad := `{"source_system":"erp","source_event_id":"e-2","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"phone":"+8613800000001"}}`
	err := pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		_, err := b.app.IngestServiceTx(b.ctx, tx, app.IngestService{Event: event(t, bad)})
		return err
	})
	e, ok := invalid.As(err)
	require.True(t, ok)
	require.Equal(t, "customer.external_id", e.Violations[0].Field)
	require.Zero(t, count(t, b.pool, `SELECT count(*) FROM rejected_events`))

	out, err := b.app.IngestService(b.ctx, app.IngestService{Event: event(t, bad), Source: "grpc"})
	require.NoError(t, err)
	require.NotNil(t, out.Invalid)
	require.NotEmpty(t, out.RejectedID)
	require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM rejected_events WHERE source = 'grpc'`))
	require.Zero(t, count(t, b.pool, `SELECT count(*) FROM services`))
}

// Two calls storing the same event at once: the second waits for the first
// and, once it committed, answers ErrConflict; a retry answers duplicate.
func TestConcurrentSameEventIsErrConflict(t *testing.T) {
	b := setup(t)
	first, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	_, err = b.app.IngestServiceTx(b.ctx, first, app.IngestService{Event: event(t, repair)})
	require.NoError(t, err)

	type result struct {
		out app.Ingested
		err error
	}
	second := make(chan result, 1)
	go func() {
		out, err := b.app.IngestService(b.ctx, app.IngestService{Event: event(t, repair), Source: "grpc"})
		second <- result{out, err}
	}()
	require.Eventually(t, func() bool {
		return count(t, b.pool, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) > 0
	}, 10*time.Second, 10*time.Millisecond, "the second call waits for the first")
	require.NoError(t, first.Commit(b.ctx))
	r := <-second
	require.ErrorIs(t, r.err, app.ErrConflict)

	again, err := b.app.IngestService(b.ctx, app.IngestService{Event: event(t, repair), Source: "grpc"})
	require.NoError(t, err)
	require.True(t, again.Duplicate)
	require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM services`))
}

// The re-hash at start re-hashes what another HASH_KEY hashed, and leaves
// nothing stale.
func TestRehashStale(t *testing.T) {
	b := setup(t)
	_, err := b.app.IngestService(b.ctx, app.IngestService{Event: event(t, repair), Source: "grpc"})
	require.NoError(t, err)
	require.NoError(t, b.app.RehashStale(b.ctx), "nothing stale: nothing to do")
	b.app.Store.Cipher, err = privacy.New(privacy.DevKeys, "bmV3LWhhc2gta2V5LW5ldy1oYXNoLWtleS1uZXctaGFzaA==")
	require.NoError(t, err)
	_, err = b.app.GetCustomer(b.ctx, app.CustomerQuery{Tenant: "default", Phone: "+8613800000001", Purpose: "inbound call"})
	require.ErrorIs(t, err, app.ErrNotFound)
	require.NoError(t, b.app.RehashStale(b.ctx))
	c, err := b.app.GetCustomer(b.ctx, app.CustomerQuery{Tenant: "default", Phone: "+8613800000001", Purpose: "inbound call"})
	require.NoError(t, err)
	require.Equal(t, "c-1", c.ExternalID)
}
