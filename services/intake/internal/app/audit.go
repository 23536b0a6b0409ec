package app

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/audit"
)

// auditTx records actions in the audit log within tx, the actions' own
// transaction, by the caller ctx carries (audit.By; system:intake when
// none).
func (a *App) auditTx(ctx context.Context, tx pgx.Tx, tenant, action string, target audit.Target, detail audit.Detail) error {
	return audit.Append(ctx, tx, audit.Entry{Tenant: tenant, Actor: audit.By(ctx, Service), Action: action, Target: target, Detail: detail, At: a.Now()})
}

// revealedTx records within tx that the caller is shown the contacts of
// these customers or refused inputs in clear (REVEAL_CONTACTS): one
// "<kind>.reveal" entry each, in the transaction that read them, so that no
// contact is shown without its entry.
func (a *App) revealedTx(ctx context.Context, tx pgx.Tx, tenant, kind string, ids ...string) error {
	by, at := audit.By(ctx, Service), a.Now()
	entries := make([]audit.Entry, len(ids))
	for i, id := range ids {
		entries[i] = audit.Entry{Tenant: tenant, Actor: by, Action: kind + ".reveal", Target: audit.Target{Kind: kind, ID: id}, At: at}
	}
	return audit.Append(ctx, tx, entries...)
}
