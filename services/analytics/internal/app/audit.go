package app

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/audit"
)

// service names analytics as the actor of its own work in the audit log
// (system:analytics).
const service = "analytics"

// auditTx records an action in the audit log within tx, the action's own
// transaction, by the caller ctx carries (audit.By).
func (a *App) auditTx(ctx context.Context, tx pgx.Tx, tenant, action string, target audit.Target, detail audit.Detail) error {
	return audit.Append(ctx, tx, audit.Entry{Tenant: tenant, Actor: audit.By(ctx, service), Action: action, Target: target, Detail: detail, At: a.now()})
}
