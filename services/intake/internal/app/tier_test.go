package app_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/stream"

	"github.com/huifang/huifang/services/intake/internal/app"
	"github.com/huifang/huifang/services/intake/internal/tier"
)

// seed 002 (real estate, 第二条: a、b类来访客户 …; 特殊客户: leaders' referrals):
// the sales centre's class arrives as customer.tier and is the tier the
// scheduler reads (ServiceCompleted, CustomerUpdated), kept beside the tier
// in effect; a tenant's override rule replaces it, and the answer warns;
// fields intake does not use are named in the answer and counted by field.
func TestUpstreamTierAndWarnings(t *testing.T) {
	b := setup(t)
	rules, err := tier.Parse(`[{"tier":"VIP","tenants":["estate"],"override":true,"any":[{"metric":"referrals","min":1}]}]`)
	require.NoError(t, err)
	b.app.Rules = rules
	b.app.IgnoredFields = app.NewIgnoredCounter()

	visit := `{"tenant_id":"estate","source_system":"crm","source_event_id":"v-1","service_type":"showroom_visit","completed_at":"2026-11-28T10:00:00Z",
 "customer":{"id":"mine","external_id":"c-1","phone":"+8613800000001","tier":"a"}}`
	out, err := b.app.IngestService(b.ctx, app.IngestService{Event: event(t, visit), Source: "grpc", Unknown: []string{"customer.class"}})
	require.NoError(t, err)
	require.Nil(t, out.Invalid)
	c, err := b.app.GetCustomer(b.ctx, app.CustomerQuery{Tenant: "estate", ExternalID: "c-1"})
	require.NoError(t, err)
	require.Equal(t, "A", c.Tier, "the class the sales centre gave, as the pack spells it")
	require.Equal(t, "A", c.UpstreamTier)
	var fields []string
	for _, w := range out.Warnings {
		fields = append(fields, w.Field)
	}
	require.Equal(t, []string{"customer.id", "customer.class"}, fields)
	require.InDelta(t, 1, testutil.ToFloat64(b.app.IgnoredFields.WithLabelValues("customer.id")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(b.app.IgnoredFields.WithLabelValues("unknown")), 0, "the sender's own key names are not labels")
	var payload []byte
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT payload FROM outbox WHERE subject = $1`, stream.SubjectServiceCompleted).Scan(&payload))
	done := &eventsv1.ServiceCompleted{}
	require.NoError(t, proto.Unmarshal(payload, done))
	require.Equal(t, "A", done.GetCustomer().GetTier(), "ServiceCompleted carries the class to the scheduler")

	// A referral names c-1 as referrer: the estate's override rule makes
	// c-1 a VIP, whatever class it was sent with; its next event's class
	// is overridden, and the answer says so.
	referral := `{"tenant_id":"estate","source_system":"crm","source_event_id":"r-1","service_type":"referral","completed_at":"2026-11-28T10:05:00Z",
 "customer":{"external_id":"c-2","phone":"+8613800000002","referred_by":"c-1"}}`
	out, err = b.app.IngestService(b.ctx, app.IngestService{Event: event(t, referral), Source: "grpc"})
	require.NoError(t, err)
	require.Nil(t, out.Invalid, "referral is a built-in service type")
	require.Empty(t, out.Warnings)
	again := `{"tenant_id":"estate","source_system":"crm","source_event_id":"v-2","service_type":"showroom_visit","completed_at":"2026-11-28T11:00:00Z",
 "customer":{"external_id":"c-1","phone":"+8613800000001","tier":"B"}}`
	out, err = b.app.IngestService(b.ctx, app.IngestService{Event: event(t, again), Source: "grpc"})
	require.NoError(t, err)
	require.Len(t, out.Warnings, 1)
	require.Equal(t, "customer.tier", out.Warnings[0].Field)
	require.Contains(t, out.Warnings[0].Reason, `the customer's tier is "VIP"`)
	c, err = b.app.GetCustomer(b.ctx, app.CustomerQuery{Tenant: "estate", ExternalID: "c-1"})
	require.NoError(t, err)
	require.Equal(t, "VIP", c.Tier)
	require.Equal(t, "B", c.UpstreamTier, "the class sent is kept beside it")
	require.InDelta(t, 1, testutil.ToFloat64(b.app.IgnoredFields.WithLabelValues("customer.tier")), 0)

	// A malformed class is refused naming the field, and changes nothing.
	bad := `{"tenant_id":"estate","source_system":"crm","source_event_id":"v-3","service_type":"showroom_visit","completed_at":"2026-11-28T11:00:00Z",
 "customer":{"external_id":"c-3","phone":"+8613800000003","tier":"A类"}}`
	out, err = b.app.IngestService(b.ctx, app.IngestService{Event: event(t, bad), Source: "grpc"})
	require.NoError(t, err)
	require.NotNil(t, out.Invalid)
	require.Equal(t, "customer.tier", out.Invalid.Violations[0].Field)
}
