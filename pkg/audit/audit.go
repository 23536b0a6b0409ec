// Package audit holds the audit log every service keeps in its schema: who
// changed or disclosed what, written in the same transaction as the action,
// append-only (database triggers refuse UPDATE, DELETE and TRUNCATE) and
// tamper-evident: per tenant the entries form a hash chain, each entry's
// hash covering the hash before it, which Verify walks. List reads it with
// filters and pages; Server serves both as huifang.audit.v1.AuditService.
//
// An entry holds no personal data: people are named by their ids, customers
// by theirs, and free text (notes, reasons, answers) is left out.
package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/postgres"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations creates the audit_log and audit_heads tables in a service's schema.
func Migrations() postgres.Migrations {
	sub, _ := fs.Sub(migrations, "migrations")
	return postgres.Migrations{Set: "audit", FS: sub}
}

// AllTenants is the tenant of the entries about what was done for every
// tenant at once (a rebuild, a re-hash, a policy of tenant "*").
const AllTenants = auth.AllTenants

// Actor is who acted: the subject of the caller's verified token and its
// roles, or the service itself (System) for work no caller asked for.
type Actor struct {
	Subject string
	Roles   []string
}

// System is the actor of a service's own work (a consumer, a background
// loop, a start): "system:<service>", no roles.
func System(service string) Actor { return Actor{Subject: "system:" + service, Roles: []string{}} }

// By returns the actor ctx carries: the verified caller the guard put there
// (auth.From), or System(service) when there is none. Commands take their
// actor from here, never from a request field, so a caller cannot name
// someone else.
func By(ctx context.Context, service string) Actor {
	p, ok := auth.From(ctx)
	if !ok || p.Subject == "" {
		return System(service)
	}
	roles := make([]string, len(p.Roles))
	for i, r := range p.Roles {
		roles[i] = string(r)
	}
	return Actor{Subject: p.Subject, Roles: roles}
}

// Target is what an action was done to: a kind ("policy", "agent",
// "record", "customer", ...) and its id.
type Target struct {
	Kind string
	ID   string
}

// Detail is the small JSON object an entry carries: ids, versions, counts,
// flags; never personal data or free text.
type Detail map[string]any

// Entry is one action to record.
type Entry struct {
	// Tenant is the tenant acted on ("*" for what was done for every tenant).
	Tenant string
	Actor  Actor
	// Action is "<kind>.<verb>": "policy.update", "customer.reveal", ...
	Action string
	Target Target
	Detail Detail
	// At is when it happened; Append uses the time of the append when zero.
	At time.Time
}

// Event is an entry as the log holds it: its place in its tenant's chain
// and the hashes that link it.
type Event struct {
	ID     int64
	Tenant string
	// Seq is the entry's place in the tenant's chain, from 1, without gaps.
	Seq    int64
	Actor  Actor
	Action string
	Target Target
	// Detail is the JSON text the hash covers, as stored.
	Detail []byte
	At     time.Time
	// PrevHash is the hash of entry Seq-1 (ZeroHash for the first).
	PrevHash []byte
	Hash     []byte
}

// ZeroHash is the prev_hash of a chain's first entry.
var ZeroHash = make([]byte, sha256.Size)

// version names the canonical encoding; it is the first field hashed.
const version = "huifang.audit/1"

// Digest returns the hash of e: SHA-256 over e.PrevHash and the canonical
// encoding of the entry, each field a netstring (len ":" bytes ","): the
// encoding's version, tenant, seq (decimal), actor, the actor's roles (the
// netstrings of each, concatenated), action, target kind, target id,
// detail, and the time (RFC 3339, UTC, six fractional digits).
// docs/security.md shows it, so that anyone can check a chain.
func Digest(e Event) []byte {
	var b bytes.Buffer
	b.Write(e.PrevHash)
	var roles bytes.Buffer
	for _, r := range e.Actor.Roles {
		netstring(&roles, r)
	}
	for _, f := range []string{version, e.Tenant, strconv.FormatInt(e.Seq, 10), e.Actor.Subject, roles.String(),
		e.Action, e.Target.Kind, e.Target.ID, string(e.Detail), stamp(e.At)} {
		netstring(&b, f)
	}
	sum := sha256.Sum256(b.Bytes())
	return sum[:]
}

func netstring(b *bytes.Buffer, s string) {
	b.WriteString(strconv.Itoa(len(s)))
	b.WriteByte(':')
	b.WriteString(s)
	b.WriteByte(',')
}

// stamp is the time as hashed: UTC, to the microsecond Postgres keeps.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00") }

// ErrInvalid is an entry that cannot be recorded (no tenant, actor or
// action); a programming error of the caller.
var ErrInvalid = errors.New("audit: invalid entry")

// Append records entries within tx, the transaction of the action they
// describe: they commit with it or not at all. Each tenant's chain is
// locked (its head row, FOR UPDATE) until tx ends, so concurrent appends
// chain one after the other; tenants are locked in order, so appends that
// span tenants do not deadlock each other.
func Append(ctx context.Context, tx pgx.Tx, entries ...Entry) error {
	if len(entries) == 0 {
		return nil
	}
	now := time.Now()
	byTenant := map[string][]Event{}
	for _, e := range entries {
		if e.Tenant == "" || e.Actor.Subject == "" || e.Action == "" {
			return fmt.Errorf("%w: tenant, actor and action are required (%q by %q on %q)", ErrInvalid, e.Action, e.Actor.Subject, e.Tenant)
		}
		detail := []byte("{}")
		if len(e.Detail) > 0 {
			var err error
			if detail, err = json.Marshal(e.Detail); err != nil {
				return fmt.Errorf("%w: %s: detail: %v", ErrInvalid, e.Action, err)
			}
		}
		at := e.At
		if at.IsZero() {
			at = now
		}
		byTenant[e.Tenant] = append(byTenant[e.Tenant], Event{
			Tenant: e.Tenant, Actor: Actor{Subject: e.Actor.Subject, Roles: nonNil(e.Actor.Roles)}, Action: e.Action,
			Target: e.Target, Detail: detail, At: at.UTC().Truncate(time.Microsecond),
		})
	}
	tenants := make([]string, 0, len(byTenant))
	for t := range byTenant {
		tenants = append(tenants, t)
	}
	slices.Sort(tenants)
	for _, t := range tenants {
		if err := appendTenant(ctx, tx, t, byTenant[t]); err != nil {
			return err
		}
	}
	return nil
}

// appendTenant chains events after the head of tenant's chain and moves the head.
func appendTenant(ctx context.Context, tx pgx.Tx, tenant string, events []Event) error {
	if _, err := tx.Exec(ctx, `INSERT INTO audit_heads (tenant_id, seq, hash) VALUES ($1, 0, $2) ON CONFLICT (tenant_id) DO NOTHING`, tenant, ZeroHash); err != nil {
		return fmt.Errorf("audit: head of %s: %w", tenant, err)
	}
	var seq int64
	var prev []byte
	if err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_heads WHERE tenant_id = $1 FOR UPDATE`, tenant).Scan(&seq, &prev); err != nil {
		return fmt.Errorf("audit: lock the head of %s: %w", tenant, err)
	}
	// One statement for all of them, however many (an import's batch
	// appends hundreds).
	n := len(events)
	seqs, ats := make([]int64, n), make([]time.Time, n)
	actors, roles, actions, kinds, ids, details := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	prevs, hashes := make([][]byte, n), make([][]byte, n)
	for i := range events {
		e := &events[i]
		seq++
		e.Seq, e.PrevHash = seq, prev
		e.Hash = Digest(*e)
		prev = e.Hash
		r, err := json.Marshal(e.Actor.Roles)
		if err != nil {
			return fmt.Errorf("audit: roles of %s: %w", e.Actor.Subject, err)
		}
		seqs[i], actors[i], roles[i], actions[i], kinds[i], ids[i] = e.Seq, e.Actor.Subject, string(r), e.Action, e.Target.Kind, e.Target.ID
		details[i], ats[i], prevs[i], hashes[i] = string(e.Detail), e.At, e.PrevHash, e.Hash
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO audit_log (tenant_id, seq, actor, actor_roles, action, target_kind, target_id, detail, occurred_at, prev_hash, hash)
SELECT $1, seq, actor, ARRAY(SELECT jsonb_array_elements_text(roles::jsonb)), action, kind, id, detail, at, prev, hash
FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::bytea[], $11::bytea[])
  AS e (seq, actor, roles, action, kind, id, detail, at, prev, hash)
ORDER BY seq`, tenant, seqs, actors, roles, actions, kinds, ids, details, ats, prevs, hashes)
	b.Queue(`UPDATE audit_heads SET seq = $2, hash = $3 WHERE tenant_id = $1`, tenant, seq, prev)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("audit: append to %s: %w", tenant, err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Break is the first broken link of a chain.
type Break struct {
	// Seq is the entry where the chain breaks.
	Seq    int64
	Reason string
}

// Verification is what Verify found.
type Verification struct {
	// Checked counts the entries whose links held.
	Checked int64
	// Broken is the first broken link; nil when the chain holds.
	Broken *Break
	// LastSeq and LastHash are the chain's head as recorded (0 and
	// ZeroHash for a tenant without entries).
	LastSeq  int64
	LastHash []byte
}

// OK tells whether the chain holds.
func (v Verification) OK() bool { return v.Broken == nil }

// verifyBatch is how many entries one read of Verify takes.
const verifyBatch = 1000

// Beginner opens transactions with options: the pool, or a connection.
type Beginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// Verify walks tenant's chain from its first entry, in one read-only
// snapshot of its own, and returns the first broken link: an entry missing
// (a gap in seq), an entry whose prev_hash is not the hash of the one
// before, an entry whose hash does not match its content (it was changed),
// a chain that ends before its recorded head (entries cut from its end) or
// goes on past it (entries written around Append).
func Verify(ctx context.Context, db Beginner, tenant string) (v Verification, err error) {
	err = pgx.BeginTxFunc(ctx, db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		v, err = verify(ctx, tx, tenant)
		return err
	})
	return v, err
}

func verify(ctx context.Context, q postgres.Querier, tenant string) (Verification, error) {
	v := Verification{LastHash: ZeroHash}
	err := q.QueryRow(ctx, `SELECT seq, hash FROM audit_heads WHERE tenant_id = $1`, tenant).Scan(&v.LastSeq, &v.LastHash)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Verification{}, fmt.Errorf("audit: head of %s: %w", tenant, err)
	}
	prev, next := ZeroHash, int64(1)
	for {
		rows, err := q.Query(ctx, `SELECT `+eventColumns+` FROM audit_log WHERE tenant_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3`,
			tenant, next, verifyBatch)
		if err != nil {
			return Verification{}, fmt.Errorf("audit: read the chain of %s: %w", tenant, err)
		}
		events, err := pgx.CollectRows(rows, scanEvent)
		if err != nil {
			return Verification{}, fmt.Errorf("audit: read the chain of %s: %w", tenant, err)
		}
		for _, e := range events {
			switch {
			case e.Seq != next:
				v.Broken = &Break{Seq: next, Reason: fmt.Sprintf("entry %d is missing (the next entry is %d)", next, e.Seq)}
			case !bytes.Equal(e.PrevHash, prev):
				v.Broken = &Break{Seq: e.Seq, Reason: fmt.Sprintf("its prev_hash is not the hash of entry %d", e.Seq-1)}
			case !bytes.Equal(Digest(e), e.Hash):
				v.Broken = &Break{Seq: e.Seq, Reason: "its hash does not match its content: the entry was changed after it was written"}
			}
			if v.Broken != nil {
				return v, nil
			}
			v.Checked++
			prev, next = e.Hash, e.Seq+1
		}
		if len(events) < verifyBatch {
			break
		}
	}
	switch last := next - 1; {
	case last < v.LastSeq:
		v.Broken = &Break{Seq: next, Reason: fmt.Sprintf("the chain ends at entry %d but its head records %d: entries were removed from its end", last, v.LastSeq)}
	case last > v.LastSeq:
		v.Broken = &Break{Seq: v.LastSeq + 1, Reason: fmt.Sprintf("entries %d to %d lie past the recorded head (%d): they were not written by Append", v.LastSeq+1, last, v.LastSeq)}
	case !bytes.Equal(prev, v.LastHash):
		v.Broken = &Break{Seq: last, Reason: "the last entry's hash is not the one its head records"}
	}
	return v, nil
}

const eventColumns = `id, tenant_id, seq, actor, actor_roles, action, target_kind, target_id, detail, occurred_at, prev_hash, hash`

func scanEvent(r pgx.CollectableRow) (Event, error) {
	var e Event
	var detail string
	err := r.Scan(&e.ID, &e.Tenant, &e.Seq, &e.Actor.Subject, &e.Actor.Roles, &e.Action, &e.Target.Kind, &e.Target.ID, &detail, &e.At, &e.PrevHash, &e.Hash)
	e.Detail = []byte(detail)
	return e, err
}
