package app

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/services/feedback/internal/store"
)

// ForgetCustomerTx redacts, within tx, the free text kept about a customer
// intake erased (CustomerUpdated with erased): what agents typed about
// them, attachments, signatures, complaints' descriptions and written
// replies (store.RedactCustomer); the ratings and categories stay, so the
// figures do not change. It writes customer.redact to the audit log with
// how many rows of each table it touched. Hearing it again changes nothing
// more.
func (a *App) ForgetCustomerTx(ctx context.Context, tx pgx.Tx, tenant, customerID string) error {
	rows, err := store.RedactCustomer(ctx, tx, tenant, customerID)
	if err != nil {
		return err
	}
	return a.auditTx(ctx, tx, tenant, "customer.redact", audit.Target{Kind: "customer", ID: customerID}, audit.Detail{"rows": rows})
}
