// Package audittest reads the audit log in the services' tests.
package audittest

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/huifang/huifang/pkg/audit"
)

// Log returns the tenant's audit entries, oldest first (at most 1000),
// after checking that their chain holds; it fails the test otherwise.
func Log(t testing.TB, pool *pgxpool.Pool, tenant string) []audit.Event {
	t.Helper()
	ctx := context.Background()
	v, err := audit.Verify(ctx, pool, tenant)
	if err != nil {
		t.Fatalf("audittest: verify %s: %v", tenant, err)
	}
	if v.Broken != nil {
		t.Fatalf("audittest: the chain of %s breaks at %d: %s", tenant, v.Broken.Seq, v.Broken.Reason)
	}
	es, err := audit.List(ctx, pool, audit.Filter{Tenant: tenant}, 0, 1000)
	if err != nil {
		t.Fatalf("audittest: list %s: %v", tenant, err)
	}
	slices.Reverse(es)
	return es
}
