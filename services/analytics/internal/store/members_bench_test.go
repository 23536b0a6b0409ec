package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/store"
	"github.com/huifang/huifang/services/analytics/migrations"
)

// BenchmarkApplyMembers applies the customer buckets of a consumer's batch
// of BenchmarkRepairsThroughNATS (33 repairs: 100 events) per transaction:
// services of 200 customers, a fifth of them bringing half of the
// services, a third of the services covered.
//
//	go test -run '^$' -bench ApplyMembers -benchtime 300x ./internal/store/
func BenchmarkApplyMembers(b *testing.B) {
	db := servicetest.Pool(b, "analytics", migrations.FS)
	ctx := context.Background()
	day := time.Date(2026, 3, 5, 10, 0, 0, 0, time.UTC)
	r := 0
	b.ResetTimer()
	for range b.N {
		var ds []rollup.MemberDelta
		for range 33 {
			cu := fmt.Sprintf("c%d", r%160+40)
			if r%2 == 0 {
				cu = fmt.Sprintf("c%d", r%40)
			}
			c := rollup.ServiceCoverage{Tenant: "default", ServiceID: fmt.Sprintf("s%d", r)}
			c = c.With("v", rollup.ServiceVisit{Day: day.Add(time.Duration(r) * time.Second), Customer: cu, Done: r%3 == 0, Dims: rollup.Dims{OrgUnit: "north"}}, true)
			ds = append(ds, c.Members()...)
			r++
		}
		if err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error { return store.ApplyMembers(ctx, tx, rollup.MemberDiff(nil, ds)) }); err != nil {
			b.Fatal(err)
		}
	}
}
