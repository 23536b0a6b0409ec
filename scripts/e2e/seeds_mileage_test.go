package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"

	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/stream"
)

// dealerIngress is a dealer's DMS event on the ingress: a service of a car
// (VIN) with its odometer reading (0: none sent).
func dealerIngress(sourceEventID, serviceType, vin string, km int, completedAt time.Time) string {
	return fmt.Sprintf(`{"tenant_id":"dealer","source_system":"erp-demo","source_event_id":%q,"service_type":%q,"completed_at":%q,"customer":{"external_id":"c-car","name":"张伟","phone":"+8613700137000"},"vehicle":{"vin":%q,"plate":"沪A12345","model":"Lavida","mileage_km":%d}}`,
		sourceEventID, serviceType, completedAt.UTC().Format(time.RFC3339), vin, km)
}

// TestMileageMovesMaintenanceReminders (issue 16, "later readings (mileage)
// move reminders"; seed 000 售后电话回访/短信提醒制度: 新车交付……首保 3个月或3000公里,
// 以先到为准 (询问客户行驶里程), SMS 2 weeks and a call 1 week before): a dealer
// loads the auto pack; its DMS delivers a new car on the ingress without a
// driving habit, so the first-maintenance reminders count 3 months. A repair
// of the same car 20 days later reads 1,600 km: the scheduler derives 80 km
// a day and moves both reminders earlier, announces them again
// (VisitPlanned) and ExplainVisit says why. A reading of another car of the
// customer moves nothing.
func TestMileageMovesMaintenanceReminders(t *testing.T) {
	s := setup(t, nil)
	ctx := t.Context()
	asOperator, err := s.issuer.Context(ctx, issuer.Operator())
	require.NoError(t, err)
	_, err = s.scheduler.LoadPolicyPack(asOperator, &schedulerv1.LoadPolicyPackRequest{TenantId: "dealer", Pack: "auto"})
	require.NoError(t, err)

	const vin, otherVIN = "LSVAM4187C2184847", "LSVAM4187C2184848"
	delivered := time.Now().UTC().Add(-20*24*time.Hour - time.Hour).Truncate(time.Second)
	repaired := delivered.Add(20 * 24 * time.Hour)
	s.publish(dealerIngress("delivery", "vehicle_delivery", vin, 0, delivered))
	delivery := s.serviceID("delivery")

	// Hand computation before the reading: no km_per_day, so 3 months after
	// the delivery count; the SMS 2 weeks and the call 1 week before, each
	// timely for a week (the tenant's zone is UTC, no quiet hours).
	threeMonths := delivered.AddDate(0, 3, 0)
	reminders := func() map[int32]*schedulerv1.PlannedVisit {
		out := map[int32]*schedulerv1.PlannedVisit{}
		for _, v := range s.plannedVisitsOf("dealer", delivery) {
			p, err := s.scheduler.GetPolicy(ctx, &schedulerv1.GetPolicyRequest{TenantId: "dealer", PolicyId: v.GetPolicyId(), Version: v.GetPolicyVersion()})
			require.NoError(t, err)
			if p.GetPolicy().GetName() == "auto-first-maintenance" {
				out[v.GetStep()] = v
			}
		}
		return out
	}
	dues := func() map[int32]time.Time {
		out := map[int32]time.Time{}
		for step, v := range reminders() {
			out[step] = v.GetDueAt().AsTime()
		}
		return out
	}
	waitFor(t, taskDeadline, "the first-maintenance reminders", func() (bool, bool, error) { return true, len(reminders()) == 2, nil })
	require.Equal(t, map[int32]time.Time{0: threeMonths.Add(-14 * 24 * time.Hour), 1: threeMonths.Add(-7 * 24 * time.Hour)}, dues())

	// Another car of the customer, read the same day: not this car's habit.
	s.publish(dealerIngress("other-car", "repair", otherVIN, 30000, repaired))
	s.serviceID("other-car")
	// This car: 1,600 km in 20 days is 80 km a day; 3,000 km after 37.5
	// days, so the SMS is due 23.5 days and the call 30.5 days after the delivery.
	s.publish(dealerIngress("repair", "repair", vin, 1600, repaired))
	s.serviceID("repair")
	want := map[int32]time.Time{0: delivered.Add(23*24*time.Hour + 12*time.Hour), 1: delivered.Add(30*24*time.Hour + 12*time.Hour)}
	waitFor(t, taskDeadline, "the reminders moved by the reading", func() (bool, bool, error) {
		got := dues()
		return true, got[0].Equal(want[0]) && got[1].Equal(want[1]), nil
	})
	s.drained()
	require.Equal(t, want, dues())
	for step, v := range reminders() {
		require.Equal(t, want[step].Add(7*24*time.Hour), v.GetDeadline().AsTime(), "timely for a week")
		require.False(t, v.GetLate())
		ex, err := s.scheduler.ExplainVisit(ctx, &schedulerv1.ExplainVisitRequest{TenantId: "dealer", VisitId: v.GetId()})
		require.NoError(t, err)
		var mileage []string
		for _, d := range ex.GetDecisions() {
			if d.GetKind() == "mileage" {
				mileage = append(mileage, d.GetDetail())
			}
		}
		require.Len(t, mileage, 1, "moved once: the other car's reading did not count")
		require.Contains(t, mileage[0], "odometer 1600 km")
		require.Contains(t, mileage[0], "80.0 km a day")
		require.Contains(t, mileage[0], "due moved earlier")
		require.NotContains(t, mileage[0], vin)

		// VisitPlanned twice: when planned and when the reading moved it.
		var announced []time.Time
		for _, m := range s.messages(stream.EventsStream, stream.SubjectVisitPlanned) {
			ev := &eventsv1.VisitPlanned{}
			require.NoError(t, proto.Unmarshal(m.Data(), ev))
			if ev.GetVisitId() == v.GetId() {
				announced = append(announced, ev.GetDueAt().AsTime())
			}
		}
		require.Len(t, announced, 2, "step %d", step)
		require.Equal(t, want[step], announced[1])
	}
}
