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
