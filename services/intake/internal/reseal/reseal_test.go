package reseal_test

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/intake/internal/privacy"
	"github.com/huifang/huifang/services/intake/internal/reseal"
	"github.com/huifang/huifang/services/intake/internal/store"
	"github.com/huifang/huifang/services/intake/migrations"
)

const newKey = "k2:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

func storeWith(t *testing.T, ring string) *store.Store {
	t.Helper()
	c, err := privacy.New(ring, privacy.DevHashKey)
	require.NoError(t, err)
	return &store.Store{Cipher: c}
}

// The job re-seals the rows stored before data keys, then after a rotation
// re-wraps the data keys under the new key, logging start, progress every
// LogEvery rows and the end (not a line per row), with the gauge at the work
// left; once both are 0 the old key can leave the ring.
func TestJobResealsThenRewraps(t *testing.T) {
	ctx := context.Background()
	pool := servicetest.Pool(t, "intake", migrations.FS)
	old := storeWith(t, privacy.DevKeys)
	for i := range 7 {
		id := string(rune('a' + i))
		_, err := pool.Exec(ctx, `INSERT INTO customers (id, tenant_id, external_id, name, phone, phone_enc, key_id, source_updated_at)
VALUES ($1, $2, $1, '客户' || $1, CASE WHEN $3 THEN '+861380000000' || $4 ELSE '' END, CASE WHEN $3 THEN NULL ELSE $5::bytea END,
  CASE WHEN $3 THEN '' ELSE 'dev' END, now())`, id, []string{"t1", "t2"}[i%2], i%2 == 0, strconv.Itoa(i), old.Cipher.Seal("+86139000000"+string(rune('0'+i))))
		require.NoError(t, err)
	}

	run := func(st *store.Store) (string, *reseal.Job) {
		var logs bytes.Buffer
		j := &reseal.Job{DB: pool, Store: st, Log: slog.New(slog.NewTextHandler(&logs, nil)), Pending: reseal.NewGauge(),
			Batch: 2, LogEvery: 4, Retry: time.Millisecond}
		require.NoError(t, j.Run(ctx))
		require.Zero(t, testutil.ToFloat64(j.Pending.WithLabelValues(reseal.WorkReseal)))
		require.Zero(t, testutil.ToFloat64(j.Pending.WithLabelValues(reseal.WorkRewrap)))
		return logs.String(), j
	}
	logs, _ := run(old)
	require.Equal(t, 1, strings.Count(logs, "sealing customers under data keys of their own: started"), logs)
	require.Contains(t, logs, "pending=7")
	require.Equal(t, 1, strings.Count(logs, ": progress"), "every 4 rows, not each: %s", logs)
	require.Contains(t, logs, "done=7")
	require.NotContains(t, logs, "re-wrapping")

	rotated := storeWith(t, newKey+","+privacy.DevKeys)
	require.NoError(t, reseal.Check(ctx, pool, rotated))
	logs, _ = run(rotated)
	require.Contains(t, logs, "re-wrapping data keys under the current ENCRYPTION_KEYS key: started")
	require.Contains(t, logs, "re-wrapping data keys under the current ENCRYPTION_KEYS key: done")
	require.Contains(t, logs, "done=7")

	rows, err := pool.Query(ctx, `SELECT action || ' ' || target_id || ' ' || detail::text FROM audit_log WHERE tenant_id = '*' ORDER BY seq`)
	require.NoError(t, err)
	entries, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{
		`customers.reseal dev {"customers":2}`, `customers.reseal dev {"customers":2}`, `customers.reseal dev {"customers":2}`, `customers.reseal dev {"customers":1}`,
		`customer_keys.rewrap k2 {"keys":2}`, `customer_keys.rewrap k2 {"keys":2}`, `customer_keys.rewrap k2 {"keys":2}`, `customer_keys.rewrap k2 {"keys":1}`,
	}, entries, "each batch is in the audit log")

	retired := storeWith(t, newKey)
	require.NoError(t, reseal.Check(ctx, pool, retired), "nothing needs the old key any more")
	for i := range 7 {
		id := string(rune('a' + i))
		c, err := retired.Customer(ctx, pool, store.CustomerKey{Tenant: []string{"t1", "t2"}[i%2], ID: id})
		require.NoError(t, err)
		require.Equal(t, "客户"+id, c.Name)
		require.NotEmpty(t, c.Phone)
	}
	logs, _ = run(retired)
	require.Empty(t, logs, "nothing to do: nothing logged")
}

// A ring that lacks a key id still in use is refused, naming it.
func TestCheckRefusesARetiredKeyStillInUse(t *testing.T) {
	ctx := context.Background()
	pool := servicetest.Pool(t, "intake", migrations.FS)
	old := storeWith(t, privacy.DevKeys)
	_, err := pool.Exec(ctx, `INSERT INTO customers (id, tenant_id, external_id, phone_enc, key_id, source_updated_at) VALUES ('a', 't1', 'a', $1, 'dev', now())`,
		old.Cipher.Seal("+8613800000001"))
	require.NoError(t, err)
	err = reseal.Check(ctx, pool, storeWith(t, newKey))
	require.ErrorContains(t, err, `ENCRYPTION_KEYS lacks key ids the database still needs: "dev" (0 data keys wrapped under it, 1 customers`)
}
