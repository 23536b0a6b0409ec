package consumer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/analytics/internal/app"
	"github.com/huifang/huifang/services/analytics/internal/rollup"
	"github.com/huifang/huifang/services/analytics/internal/store"
	"github.com/huifang/huifang/services/analytics/migrations"
)

// BenchmarkVisitEvents measures the consumer's work per visit event (one
// transaction each, without the inbox row): a due and a logged event of a
// new service of one of 1000 customers; and the customer-bucket part alone.
//
//	go test -run '^$' -bench . -benchtime 2000x ./internal/consumer/
func BenchmarkVisitEvents(b *testing.B) {
	pool := servicetest.Pool(b, "analytics", migrations.FS)
	ctx := context.Background()
	a := &app.App{DB: pool}
	day := time.Date(2025, 3, 5, 10, 0, 0, 0, time.UTC)
	b.Run("due+logged", func(b *testing.B) {
		for i := range b.N {
			v, s := fmt.Sprintf("bv%d", i), fmt.Sprintf("bs%d", i)
			for _, ev := range []proto.Message{
				&eventsv1.VisitDue{VisitId: v, ServiceId: s, Customer: cust(fmt.Sprintf("c%d", i%1000)), DueAt: timestamppb.New(day.AddDate(0, 0, i%60)), OrgUnit: "north"},
				&eventsv1.VisitLogged{VisitId: v, RecordId: "r" + v, LoggedAt: timestamppb.New(day.AddDate(0, 0, i%60))},
			} {
				if err := a.ApplyEvent(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(2*b.N), "µs/event")
	})
	b.Run("members", func(b *testing.B) {
		for i := range b.N {
			sc := rollup.ServiceCoverage{Tenant: "default", ServiceID: fmt.Sprintf("ms%d", i)}
			sc = sc.With("v", rollup.ServiceVisit{Day: day.AddDate(0, 0, i%60), Customer: fmt.Sprintf("m%d", i%1000), Dims: rollup.Dims{OrgUnit: "north"}}, true)
			if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				return store.ApplyMembers(ctx, tx, rollup.MemberDiff(nil, sc.Members()))
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
