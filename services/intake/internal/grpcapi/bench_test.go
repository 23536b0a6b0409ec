package grpcapi_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/intake/internal/app"
	"github.com/huifang/huifang/services/intake/internal/grpcapi"
	"github.com/huifang/huifang/services/intake/internal/privacy"
	"github.com/huifang/huifang/services/intake/internal/store"
	"github.com/huifang/huifang/services/intake/internal/tier"
	"github.com/huifang/huifang/services/intake/migrations"
)

// archiveRecord is line i of a customer archive as huifang-import sends
// it: name, phone, email, kind, org unit, two staff owners, and contact
// preferences for one customer in three.
func archiveRecord(i int) *intakev1.CustomerRecord {
	c := &typesv1.Customer{
		ExternalId: fmt.Sprintf("c-%07d", i), Name: fmt.Sprintf("客户%d", i), Phone: fmt.Sprintf("+86138%08d", i),
		Email: fmt.Sprintf("c%d@example.com", i), Kind: "individual", OrgUnit: fmt.Sprintf("unit-%d", i%20),
		OwnerIds: []string{fmt.Sprintf("s-%d", i%50), fmt.Sprintf("s-%d", (i+1)%50)},
	}
	if i%10 == 0 {
		c.Kind = "fleet"
	}
	if i%3 == 0 {
		c.Preferences = &typesv1.ContactPreferences{TimeZone: "Asia/Shanghai", OptedOut: []typesv1.Channel{typesv1.Channel_CHANNEL_SMS}}
	}
	return &intakev1.CustomerRecord{Line: int64(i + 2), Customer: c, SourceUpdatedAt: timestamppb.New(now.AddDate(0, -1, 0))}
}

// mixedRecord is line i of an archive shaped like huifang-loadgen
// -archive's (customers from first on): one line in 33 repeats the
// customer of a line 100–500 lines before (another email, a later source
// time), and one customer in 20 is referred by one of the first 100, so
// that calls meet customers that calls still in flight create, and
// referrers outside themselves.
func mixedRecord(first, i int) *intakev1.CustomerRecord {
	c := i
	repeat := i%33 == 32 && i >= 500
	if repeat {
		c = i - 100 - i%400
	}
	r := archiveRecord(first + c)
	r.Line = int64(i + 2)
	if repeat {
		r.Customer.Email = fmt.Sprintf("c%d.%d@example.com", first+c, i)
		r.SourceUpdatedAt = timestamppb.New(now.AddDate(0, 0, -20))
	}
	if c%20 == 7 && c >= 100 {
		r.Customer.ReferredBy = fmt.Sprintf("c-%07d", first+c%100)
	}
	return r
}

// BenchmarkImportCustomers measures an archive import through gRPC, as
// huifang-import sends it: b.N records in calls of 1,000 (its -batch),
// 4 calls in flight (its -parallel), against the service's pool (4
// connections). "new": every record a new customer; "unchanged": the same
// records again (a resumed import); "archive": new customers with repeats
// and referrals (mixedRecord). It reports records/s.
func BenchmarkImportCustomers(b *testing.B) {
	const batch, parallel = 1000, 4
	pool := servicetest.Pool(b, "intake", migrations.FS)
	var js jetstream.JetStream // the relay is only notified here, never run
	cipher, err := privacy.New(privacy.DevKeys, privacy.DevHashKey)
	require.NoError(b, err)
	rules, err := tier.Parse(tier.DefaultRules)
	require.NoError(b, err)
	a := &app.App{DB: pool, Store: &store.Store{Cipher: cipher}, Rules: rules,
		Relay: outbox.NewRelay(pool, js, servicetest.Logger(), "intake"), Now: time.Now, Log: servicetest.Logger()}
	srv := grpcserver.New(servicetest.Logger(), "", "")
	intakev1.RegisterIntakeServiceServer(srv.GRPC, &grpcapi.Server{App: a})
	client := intakev1.NewIntakeServiceClient(servicetest.Serve(b, srv))

	var offset atomic.Int64 // each b.N of "new" imports customers not seen before
	run := func(b *testing.B, record func(int) *intakev1.CustomerRecord) {
		b.Helper()
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range parallel {
			wg.Go(func() {
				for {
					from := int(next.Add(batch)) - batch
					if from >= b.N {
						return
					}
					req := &intakev1.ImportCustomersRequest{Source: "bench"}
					for i := from; i < min(from+batch, b.N); i++ {
						req.Records = append(req.Records, record(i))
					}
					resp, err := client.ImportCustomers(b.Context(), req)
					if err != nil {
						b.Error(err)
						return
					}
					if resp.Rejected > 0 {
						b.Errorf("%d records rejected", resp.Rejected)
					}
				}
			})
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
	}
	b.Run("new", func(b *testing.B) {
		first := int(offset.Add(int64(b.N))) - b.N
		run(b, func(i int) *intakev1.CustomerRecord { return archiveRecord(first + i) })
	})
	b.Run("unchanged", func(b *testing.B) {
		b.StopTimer()
		first := int(offset.Add(int64(b.N))) - b.N
		record := func(i int) *intakev1.CustomerRecord { return archiveRecord(first + i) }
		run(b, record)
		analyze(b, pool)
		b.StartTimer()
		run(b, record)
	})
	b.Run("archive", func(b *testing.B) {
		first := int(offset.Add(int64(b.N))) - b.N
		run(b, func(i int) *intakev1.CustomerRecord { return mixedRecord(first, i) })
	})
}

// analyze brings the planner's statistics up to date after a bulk load,
// as autovacuum would a moment later.
func analyze(b *testing.B, pool *pgxpool.Pool) {
	b.Helper()
	_, err := pool.Exec(b.Context(), `ANALYZE customers`)
	require.NoError(b, err)
}
