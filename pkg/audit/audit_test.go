package audit_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/pgtest"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/pkg/servicetest"
)

const schema = "audittest"

func pool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	p, err := postgres.Open(t.Context(), servicetest.Logger(), pgtest.NewDatabase(t), schema, audit.Migrations())
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func entry(tenant, action string, i int) audit.Entry {
	return audit.Entry{
		Tenant: tenant, Actor: audit.Actor{Subject: fmt.Sprintf("user-%d", i%3), Roles: []string{"tenant_admin"}},
		Action: action, Target: audit.Target{Kind: "policy", ID: fmt.Sprintf("p-%d", i%4)},
		Detail: audit.Detail{"version": i, "active": i%2 == 0}, At: t0.Add(time.Duration(i) * time.Minute),
	}
}

func appendAll(t *testing.T, db *pgxpool.Pool, entries ...audit.Entry) {
	t.Helper()
	require.NoError(t, pgx.BeginFunc(t.Context(), db, func(tx pgx.Tx) error { return audit.Append(t.Context(), tx, entries...) }))
}

func requireIntact(t *testing.T, db *pgxpool.Pool, tenant string, entries int64) {
	t.Helper()
	v, err := audit.Verify(t.Context(), db, tenant)
	require.NoError(t, err)
	require.Nil(t, v.Broken, "the chain of %s holds", tenant)
	require.Equal(t, entries, v.Checked)
	require.Equal(t, entries, v.LastSeq)
}

func TestAppendChainsPerTenant(t *testing.T) {
	db := pool(t)
	appendAll(t, db, entry("acme", "policy.create", 1), entry("globex", "policy.create", 2), entry("acme", "policy.update", 3))
	appendAll(t, db, entry("acme", "policy.activate", 4))
	requireIntact(t, db, "acme", 3)
	requireIntact(t, db, "globex", 1)
	requireIntact(t, db, "initech", 0)

	got, err := audit.List(t.Context(), db, audit.Filter{Tenant: "acme"}, 0, 10)
	require.NoError(t, err)
	require.Len(t, got, 3)
	require.Equal(t, []int64{3, 2, 1}, []int64{got[0].Seq, got[1].Seq, got[2].Seq}, "newest first")
	require.Equal(t, []string{"policy.activate", "policy.update", "policy.create"}, []string{got[0].Action, got[1].Action, got[2].Action})
	require.Equal(t, audit.ZeroHash, got[2].PrevHash, "the first entry links to the zero hash")
	require.Equal(t, got[2].Hash, got[1].PrevHash)
	require.Equal(t, got[1].Hash, got[0].PrevHash)
	require.Equal(t, audit.Digest(got[0]), got[0].Hash)
	require.JSONEq(t, `{"version":4,"active":true}`, string(got[0].Detail))
	require.Equal(t, t0.Add(4*time.Minute), got[0].At.UTC())
	require.Equal(t, audit.Actor{Subject: "user-1", Roles: []string{"tenant_admin"}}, got[0].Actor)
}

// The hash is over the canonical encoding: any field changed changes it,
// and an independent implementation of docs/security.md's recipe gets it.
func TestDigestCoversEveryField(t *testing.T) {
	e := audit.Event{Tenant: "acme", Seq: 7, Actor: audit.Actor{Subject: "u", Roles: []string{"auditor", "leader"}}, Action: "policy.update",
		Target: audit.Target{Kind: "policy", ID: "p-1"}, Detail: []byte(`{"version":2}`), At: t0, PrevHash: audit.ZeroHash}
	base := audit.Digest(e)
	// sha256(32 zero bytes || "15:huifang.audit/1,4:acme,1:7,1:u,19:7:auditor,6:leader,,13:policy.update,6:policy,3:p-1,13:{"version":2},27:2026-12-01T09:00:00.000000Z,")
	require.Equal(t, "5d7b4433985c53f21d063e2357523885c7badbc2d3e615b8814d432df612d038", hex.EncodeToString(base))
	for name, change := range map[string]func(*audit.Event){
		"tenant":    func(e *audit.Event) { e.Tenant = "acmf" },
		"seq":       func(e *audit.Event) { e.Seq = 8 },
		"actor":     func(e *audit.Event) { e.Actor.Subject = "v" },
		"roles":     func(e *audit.Event) { e.Actor.Roles = []string{"auditor"} },
		"action":    func(e *audit.Event) { e.Action = "policy.create" },
		"kind":      func(e *audit.Event) { e.Target.Kind = "pack" },
		"id":        func(e *audit.Event) { e.Target.ID = "p-2" },
		"detail":    func(e *audit.Event) { e.Detail = []byte(`{"version":3}`) },
		"time":      func(e *audit.Event) { e.At = e.At.Add(time.Microsecond) },
		"prev hash": func(e *audit.Event) { e.PrevHash = make([]byte, 32); e.PrevHash[0] = 1 },
		"boundary":  func(e *audit.Event) { e.Target.Kind, e.Target.ID = "policyp", "-1" },
	} {
		c := e
		change(&c)
		require.NotEqual(t, base, audit.Digest(c), name)
	}
}

// Many goroutines appending at once to the same tenants still make one
// chain each: seq 1..n without gaps, each link holding.
func TestConcurrentAppendsChain(t *testing.T) {
	db := pool(t)
	const workers, each = 16, 12
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				tenants := []string{"acme"}
				if i%3 == 0 {
					tenants = []string{"globex", "acme"} // one transaction over both chains
				}
				err := pgx.BeginFunc(context.Background(), db, func(tx pgx.Tx) error {
					var es []audit.Entry
					for _, tn := range tenants {
						es = append(es, entry(tn, "agent.update", w*each+i))
					}
					return audit.Append(context.Background(), tx, es...)
				})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	requireIntact(t, db, "acme", workers*each)
	requireIntact(t, db, "globex", workers*each/3)
	var distinct, maxSeq int64
	require.NoError(t, db.QueryRow(t.Context(), `SELECT count(DISTINCT seq), max(seq) FROM audit_log WHERE tenant_id = 'acme'`).Scan(&distinct, &maxSeq))
	require.Equal(t, int64(workers*each), distinct)
	require.Equal(t, int64(workers*each), maxSeq)
}

// An entry belongs to its action's transaction: rolled back with it.
func TestAppendRollsBackWithTheAction(t *testing.T) {
	db := pool(t)
	appendAll(t, db, entry("acme", "policy.create", 1))
	err := pgx.BeginFunc(t.Context(), db, func(tx pgx.Tx) error {
		if err := audit.Append(t.Context(), tx, entry("acme", "policy.update", 2)); err != nil {
			return err
		}
		return fmt.Errorf("the action failed")
	})
	require.Error(t, err)
	requireIntact(t, db, "acme", 1)
	appendAll(t, db, entry("acme", "policy.update", 3))
	requireIntact(t, db, "acme", 2)

	err = pgx.BeginFunc(t.Context(), db, func(tx pgx.Tx) error {
		return audit.Append(t.Context(), tx, audit.Entry{Tenant: "acme", Action: "policy.update"})
	})
	require.ErrorIs(t, err, audit.ErrInvalid, "an entry without an actor is refused")
}

func TestTheDatabaseRefusesChanges(t *testing.T) {
	db := pool(t)
	appendAll(t, db, entry("acme", "policy.create", 1), entry("acme", "policy.update", 2))
	for _, stmt := range []string{
		`UPDATE audit_log SET action = 'policy.delete' WHERE seq = 1`,
		`DELETE FROM audit_log WHERE seq = 2`,
		`TRUNCATE audit_log`,
		`UPDATE audit_heads SET seq = 1`,
		`DELETE FROM audit_heads`,
		`TRUNCATE audit_heads`,
	} {
		_, err := db.Exec(t.Context(), stmt)
		require.Error(t, err, stmt)
		require.Equal(t, postgres.CodeRaiseException, postgres.Code(err), "%s: %v", stmt, err)
	}
	requireIntact(t, db, "acme", 2)
}

// tamper runs stmts with the append-only triggers off, as the table's owner
// or a superuser could.
func tamper(t *testing.T, db *pgxpool.Pool, stmts ...string) {
	t.Helper()
	err := pgx.BeginFunc(t.Context(), db, func(tx pgx.Tx) error {
		for _, s := range append(append([]string{`ALTER TABLE audit_log DISABLE TRIGGER USER`, `ALTER TABLE audit_heads DISABLE TRIGGER USER`}, stmts...),
			`ALTER TABLE audit_log ENABLE TRIGGER USER`, `ALTER TABLE audit_heads ENABLE TRIGGER USER`) {
			if _, err := tx.Exec(t.Context(), s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	})
	require.NoError(t, err)
}

func TestVerifyFindsTheFirstBrokenLink(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stmts  []string
		seq    int64
		reason string
	}{
		{"an entry changed", []string{`UPDATE audit_log SET action = 'policy.create' WHERE tenant_id = $T AND seq = 3`}, 3, "hash does not match"},
		{"a detail changed", []string{`UPDATE audit_log SET detail = '{"version":99}' WHERE tenant_id = $T AND seq = 5`}, 5, "hash does not match"},
		{"an entry changed with its hash made again", []string{
			`UPDATE audit_log SET target_id = 'p-x', hash = sha256(hash) WHERE tenant_id = $T AND seq = 4`}, 4, "hash does not match"},
		{"an entry removed", []string{`DELETE FROM audit_log WHERE tenant_id = $T AND seq = 2`}, 2, "entry 2 is missing"},
		{"entries cut from the end", []string{`DELETE FROM audit_log WHERE tenant_id = $T AND seq >= 5`}, 5, "removed from its end"},
		{"the end cut and the head moved back", []string{`DELETE FROM audit_log WHERE tenant_id = $T AND seq = 6`,
			`UPDATE audit_heads SET seq = 5 WHERE tenant_id = $T`}, 5, "not the one its head records"},
		{"an entry put in between", []string{`UPDATE audit_log SET seq = seq + 1000 WHERE tenant_id = $T AND seq >= 4`,
			`UPDATE audit_log SET seq = seq - 999 WHERE tenant_id = $T AND seq > 1000`,
			`INSERT INTO audit_log (tenant_id, seq, actor, action, occurred_at, prev_hash, hash)
SELECT tenant_id, 4, actor, action, occurred_at, hash, hash FROM audit_log WHERE tenant_id = $T AND seq = 3`}, 4, "hash does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := pool(t)
			var es []audit.Entry
			for i := range 6 {
				es = append(es, entry("acme", "policy.update", i), entry("globex", "policy.update", i))
			}
			appendAll(t, db, es...)
			requireIntact(t, db, "acme", 6)
			var stmts []string
			for _, s := range tc.stmts {
				stmts = append(stmts, replaceTenant(s, "acme"))
			}
			tamper(t, db, stmts...)
			v, err := audit.Verify(t.Context(), db, "acme")
			require.NoError(t, err)
			require.NotNil(t, v.Broken, "the tampering is found")
			require.Equal(t, tc.seq, v.Broken.Seq, v.Broken.Reason)
			require.Contains(t, v.Broken.Reason, tc.reason)
			requireIntact(t, db, "globex", 6)
		})
	}
}

// An entry inserted past the head with a well-formed link and hash (as
// someone who knows the recipe would, without Append's lock) is found too.
func TestVerifyFindsEntriesPastTheHead(t *testing.T) {
	db := pool(t)
	appendAll(t, db, entry("acme", "policy.update", 1), entry("acme", "policy.update", 2))
	last, err := audit.List(t.Context(), db, audit.Filter{Tenant: "acme"}, 0, 1)
	require.NoError(t, err)
	forged := audit.Event{Tenant: "acme", Seq: 3, Actor: audit.Actor{Subject: "intruder", Roles: []string{}}, Action: "policy.update",
		Detail: []byte(`{}`), At: t0, PrevHash: last[0].Hash}
	forged.Hash = audit.Digest(forged)
	_, err = db.Exec(t.Context(), `INSERT INTO audit_log (tenant_id, seq, actor, action, detail, occurred_at, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		forged.Tenant, forged.Seq, forged.Actor.Subject, forged.Action, string(forged.Detail), forged.At, forged.PrevHash, forged.Hash)
	require.NoError(t, err, "inserting is what the log is for; only Append moves the head")
	v, err := audit.Verify(t.Context(), db, "acme")
	require.NoError(t, err)
	require.NotNil(t, v.Broken)
	require.Equal(t, int64(3), v.Broken.Seq)
	require.Contains(t, v.Broken.Reason, "past the recorded head")
	require.Equal(t, int64(3), v.Checked, "every link of the forged entry holds; only the head does not")
}

func replaceTenant(s, tenant string) string { return strings.ReplaceAll(s, "$T", "'"+tenant+"'") }

func TestListFiltersAndPages(t *testing.T) {
	db := pool(t)
	var es []audit.Entry
	for i := range 20 {
		action := "policy.update"
		if i%5 == 0 {
			action = "pack.load"
		}
		es = append(es, entry("acme", action, i))
	}
	appendAll(t, db, es...)
	appendAll(t, db, entry("globex", "policy.update", 1))

	count := func(f audit.Filter) int {
		f.Tenant = "acme"
		got, err := audit.List(t.Context(), db, f, 0, 100)
		require.NoError(t, err)
		for _, e := range got {
			require.Equal(t, "acme", e.Tenant)
		}
		return len(got)
	}
	require.Equal(t, 20, count(audit.Filter{}))
	require.Equal(t, 4, count(audit.Filter{Action: "pack.load"}))
	require.Equal(t, 7, count(audit.Filter{Actor: "user-0"}))
	require.Equal(t, 5, count(audit.Filter{TargetKind: "policy", TargetID: "p-1"}))
	require.Equal(t, 0, count(audit.Filter{TargetKind: "agent", TargetID: "p-1"}))
	require.Equal(t, 5, count(audit.Filter{From: t0.Add(10 * time.Minute), To: t0.Add(15 * time.Minute)}))
	require.Equal(t, 2, count(audit.Filter{Action: "pack.load", From: t0.Add(10 * time.Minute)}))

	var seqs []int64
	before := int64(0)
	for {
		got, err := audit.List(t.Context(), db, audit.Filter{Tenant: "acme"}, before, 3)
		require.NoError(t, err)
		for _, e := range got {
			seqs = append(seqs, e.Seq)
		}
		if len(got) < 3 {
			break
		}
		before = got[len(got)-1].ID
	}
	require.Len(t, seqs, 20)
	for i, s := range seqs {
		require.Equal(t, int64(20-i), s, "every entry once, newest first")
	}
}

func TestByTakesTheVerifiedCaller(t *testing.T) {
	ctx := auth.With(context.Background(), auth.Principal{Subject: "kc-123", Tenant: "acme", Roles: []auth.Role{auth.Leader, auth.Director}, AgentID: "l-1"})
	require.Equal(t, audit.Actor{Subject: "kc-123", Roles: []string{"leader", "director"}}, audit.By(ctx, "dispatch"))
	require.Equal(t, audit.Actor{Subject: "system:dispatch", Roles: []string{}}, audit.By(context.Background(), "dispatch"))
}

// Entries appended together (one statement) keep each its own actor and
// roles, none or several, in the chain's order.
func TestAppendManyKeepsEachActor(t *testing.T) {
	db := pool(t)
	many := []audit.Entry{entry("acme", "policy.create", 1), entry("acme", "policy.update", 2), entry("acme", "policy.update", 3)}
	many[0].Actor = audit.System("intake")
	many[1].Actor.Roles = []string{"tenant_admin", "director"}
	appendAll(t, db, many...)
	requireIntact(t, db, "acme", 3)
	got, err := audit.List(t.Context(), db, audit.Filter{Tenant: "acme"}, 0, 10)
	require.NoError(t, err)
	require.Equal(t, audit.Actor{Subject: "system:intake", Roles: []string{}}, got[2].Actor)
	require.Equal(t, []string{"tenant_admin", "director"}, got[1].Actor.Roles)
	require.Equal(t, "user-0", got[0].Actor.Subject)
}
