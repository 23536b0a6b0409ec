package grpcapi_test

import (
	"context"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/grpcserver"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/services/scheduler/internal/app"
	"github.com/huifang/huifang/services/scheduler/internal/grpcapi"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

var now = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func create(t *testing.T, ctx context.Context, srv interface {
	CreatePolicy(context.Context, *schedulerv1.CreatePolicyRequest) (*schedulerv1.CreatePolicyResponse, error)
}, js string) *schedulerv1.Policy {
	t.Helper()
	req := &schedulerv1.CreatePolicyRequest{}
	require.NoError(t, protojson.Unmarshal([]byte(js), req))
	resp, err := srv.CreatePolicy(ctx, req)
	require.NoError(t, err)
	return resp.Policy
}

// planService plans a service of customer c-1, as the ServiceCompleted consumer does.
func planService(t *testing.T, ctx context.Context, srv *grpcapi.Server, id, serviceType string, at time.Time) {
	t.Helper()
	customer, err := app.CustomerFrom(&typesv1.Customer{Id: "c-1"})
	require.NoError(t, err)
	_, err = srv.App.PlanService(ctx, app.Completed{Customer: customer,
		Service: policy.Service{Tenant: "default", ID: id, Type: serviceType, CompletedAt: at, CustomerID: "c-1"}})
	require.NoError(t, err)
}

func code(ctx context.Context, err error) codes.Code {
	return status.Code(grpcserver.Status(ctx, servicetest.Logger(), err))
}

// Versioned policies: UpdatePolicy makes version 2; version 1 stays readable; built-ins cannot be edited by a tenant.
func TestUpdateActivateDeactivate(t *testing.T) {
	ctx, srv := setup(t)
	p := create(t, ctx, srv, `{"policy":{"name":"repairs","trigger":{"service_types":["repair"]},"steps":[{"offset":"86400s","channel":"CHANNEL_PHONE"}]}}`)
	upd := &schedulerv1.UpdatePolicyRequest{}
	require.NoError(t, protojson.Unmarshal([]byte(`{"policy_id":"`+p.Id+`","policy":{"name":"repairs","trigger":{"service_types":["repair"],"tiers":["key"]},
	  "steps":[{"offset":"172800s","window":"259200s","channel":"CHANNEL_PHONE","sample_rate":0.3,"group":"property_assistant"}]}}`), upd))
	got, err := srv.UpdatePolicy(ctx, upd)
	require.NoError(t, err)
	require.Equal(t, int32(2), got.Policy.Version)
	require.Equal(t, []string{"key"}, got.Policy.Trigger.Tiers)
	v1, err := srv.GetPolicy(ctx, &schedulerv1.GetPolicyRequest{PolicyId: p.Id, Version: 1})
	require.NoError(t, err)
	require.Equal(t, 86400*time.Second, v1.Policy.Steps[0].Offset.AsDuration())

	bad := &schedulerv1.UpdatePolicyRequest{PolicyId: p.Id, Policy: &schedulerv1.Policy{Name: "x", Trigger: &schedulerv1.Trigger{}}}
	_, err = srv.UpdatePolicy(ctx, bad)
	require.Equal(t, codes.InvalidArgument, code(ctx, err))

	off, err := srv.DeactivatePolicy(ctx, &schedulerv1.DeactivatePolicyRequest{PolicyId: p.Id})
	require.NoError(t, err)
	require.False(t, off.Policy.Active)
	on, err := srv.ActivatePolicy(ctx, &schedulerv1.ActivatePolicyRequest{PolicyId: p.Id})
	require.NoError(t, err)
	require.True(t, on.Policy.Active)
	require.Equal(t, int32(2), on.Policy.Version)

	_, err = srv.UpdatePolicy(ctx, &schedulerv1.UpdatePolicyRequest{PolicyId: "builtin-appliance-purchase", Policy: upd.Policy})
	require.Equal(t, codes.FailedPrecondition, code(ctx, err), "a tenant cannot edit a built-in")
	_, err = srv.UpdatePolicy(ctx, &schedulerv1.UpdatePolicyRequest{PolicyId: "nope", Policy: upd.Policy})
	require.Equal(t, codes.NotFound, code(ctx, err))
}

// A tenant switches a built-in policy off for itself only (seed 001's purchase
// visit is not wanted by a real-estate developer) and on again; ListPolicies
// shows each tenant its effective state.
func TestDeactivateBuiltinForOneTenant(t *testing.T) {
	ctx, srv := setup(t)
	const id = "builtin-appliance-purchase"
	off, err := srv.DeactivatePolicy(ctx, &schedulerv1.DeactivatePolicyRequest{TenantId: "estate", PolicyId: id})
	require.NoError(t, err)
	require.False(t, off.Policy.Active)
	require.True(t, off.Policy.TenantOverride)
	state := func(tenant string) *schedulerv1.Policy {
		l, err := srv.ListPolicies(ctx, &schedulerv1.ListPoliciesRequest{TenantId: tenant})
		require.NoError(t, err)
		for _, p := range l.Policies {
			if p.Id == id {
				return p
			}
		}
		t.Fatalf("%s not listed", id)
		return nil
	}
	require.False(t, state("estate").Active)
	require.True(t, state("shop").Active, "other tenants are unaffected")
	require.False(t, state("shop").TenantOverride)
	on, err := srv.ActivatePolicy(ctx, &schedulerv1.ActivatePolicyRequest{TenantId: "estate", PolicyId: id})
	require.NoError(t, err)
	require.True(t, on.Policy.Active)
	require.True(t, state("estate").Active)
	_, err = srv.DeactivatePolicy(ctx, &schedulerv1.DeactivatePolicyRequest{TenantId: "estate", PolicyId: "nope"})
	require.Equal(t, codes.NotFound, code(ctx, err))
}

// The project calendar (seed 002: launch, offers, show-flat opening, construction) is part of the contact policy.
func TestContactPolicyMilestones(t *testing.T) {
	ctx, srv := setup(t)
	req := &schedulerv1.SetContactPolicyRequest{}
	require.NoError(t, protojson.Unmarshal([]byte(`{"tenant_id":"estate","contact_policy":{"time_zone":"Asia/Shanghai",
	  "milestones":[{"date":"2026-03-15","kind":"launch","project":"bay"},{"date":"2026-04-20","kind":"construction","name":"topping-out"}]}}`), req))
	_, err := srv.SetContactPolicy(ctx, req)
	require.NoError(t, err)
	got, err := srv.GetContactPolicy(ctx, &schedulerv1.GetContactPolicyRequest{TenantId: "estate"})
	require.NoError(t, err)
	require.Len(t, got.ContactPolicy.Milestones, 2)
	require.Equal(t, "bay", got.ContactPolicy.Milestones[0].Project)
	require.Equal(t, "topping-out", got.ContactPolicy.Milestones[1].Name)

	require.NoError(t, protojson.Unmarshal([]byte(`{"contact_policy":{"milestones":[{"date":"15/03/2026","kind":"Launch!"}]}}`), req))
	_, err = srv.SetContactPolicy(ctx, req)
	require.Equal(t, codes.InvalidArgument, code(ctx, err))
}

// Seed packs load as data for a tenant; loading again makes new versions.
func TestLoadPolicyPack(t *testing.T) {
	ctx, srv := setup(t)
	packs, err := srv.ListPolicyPacks(ctx, &schedulerv1.ListPolicyPacksRequest{})
	require.NoError(t, err)
	require.Len(t, packs.Packs, 7)
	got, err := srv.LoadPolicyPack(ctx, &schedulerv1.LoadPolicyPackRequest{TenantId: "acme", Pack: "auto", Inactive: true})
	require.NoError(t, err)
	require.Len(t, got.Policies, 14, "9 and seed 000's parts-arrived, recall, service festival, promotion and loyalty programs")
	for _, p := range got.Policies {
		require.False(t, p.Active)
		require.Equal(t, "auto", p.Pack)
		require.Equal(t, "acme", p.TenantId)
	}
	again, err := srv.LoadPolicyPack(ctx, &schedulerv1.LoadPolicyPackRequest{TenantId: "acme", Pack: "auto"})
	require.NoError(t, err)
	require.Equal(t, int32(2), again.Policies[0].Version)
	require.Equal(t, got.Policies[0].Id, again.Policies[0].Id)
	// seed 000 hospital: the "within the first week" variant is loaded off, the discharge schedule on.
	hosp, err := srv.LoadPolicyPack(ctx, &schedulerv1.LoadPolicyPackRequest{TenantId: "clinic", Pack: "hospital"})
	require.NoError(t, err)
	active := map[string]bool{}
	for _, p := range hosp.Policies {
		active[p.Name] = p.Active
	}
	require.Equal(t, map[string]bool{"hospital-discharge": true, "hospital-first-week": false, "hospital-checkup": true}, active)
	_, err = srv.LoadPolicyPack(ctx, &schedulerv1.LoadPolicyPackRequest{Pack: "bakery"})
	require.Equal(t, codes.InvalidArgument, code(ctx, err))
}

// SimulatePolicy shows the load before a policy is turned on (seed 000 property: 50% of closed complaints).
func TestSimulatePolicy(t *testing.T) {
	ctx, srv := setup(t)
	req := &schedulerv1.SimulatePolicyRequest{}
	require.NoError(t, protojson.Unmarshal([]byte(`{"policy":{"name":"complaints","trigger":{"service_types":["complaint_closed"]},
	  "steps":[{"offset":"0s","window":"259200s","channel":"CHANNEL_PHONE","sample_rate":0.5,"group_by_severity":{"major":"company_manager"},"group":"property_assistant"}]},
	  "synthetic":{"services_per_day":100,"days":10,"severities":["general","general","major"]},"from":"2026-12-01T00:00:00Z"}`), req))
	resp, err := srv.SimulatePolicy(ctx, req)
	require.NoError(t, err)
	require.Equal(t, int32(1000), resp.Services)
	require.Equal(t, int32(1000), resp.Visits+resp.Suppressed)
	require.InDelta(t, 500, resp.Visits, 50)
	require.Len(t, resp.PerDay, 10)
	require.Equal(t, resp.Visits, resp.PerChannel["CHANNEL_PHONE"]+resp.PerChannel["CHANNEL_ONSITE"])
	require.InDelta(t, float64(resp.Visits)/3, resp.PerGroup["company_manager"], 40)
	require.Equal(t, resp.PerGroup["company_manager"], resp.PerChannel["CHANNEL_ONSITE"], "seed 000: the major complaints, and only they, on site")

	_, err = srv.SimulatePolicy(ctx, &schedulerv1.SimulatePolicyRequest{Policy: req.Policy, Synthetic: &schedulerv1.SyntheticLoad{ServicesPerDay: 0, Days: 1000}})
	require.Equal(t, codes.InvalidArgument, code(ctx, err))

	// replay: the tenant's past services.
	planService(t, ctx, srv, "s-1", "complaint_closed", now.Add(-day))
	replay, err := srv.SimulatePolicy(ctx, &schedulerv1.SimulatePolicyRequest{Policy: req.Policy, From: timestamppb.New(now.Add(-7 * day)), To: timestamppb.New(now)})
	require.NoError(t, err)
	require.Equal(t, int32(1), replay.Services)
}

const day = 24 * time.Hour

// ExplainVisit, ReschedulePlannedVisit (the customer asked for another time), CancelPlannedVisit (VisitCancelled).
func TestExplainRescheduleCancel(t *testing.T) {
	ctx, srv := setup(t)
	_, err := srv.SetContactPolicy(ctx, &schedulerv1.SetContactPolicyRequest{Preset: "002", ContactPolicy: &schedulerv1.ContactPolicy{TimeZone: "Asia/Shanghai",
		Caps: []*schedulerv1.FrequencyCap{{Channel: typesv1.Channel_CHANNEL_PHONE, Max: 1, Per: durationpb.New(3 * day)}}}})
	require.NoError(t, err)
	cp, err := srv.GetContactPolicy(ctx, &schedulerv1.GetContactPolicyRequest{})
	require.NoError(t, err)
	require.Len(t, cp.ContactPolicy.Windows, 2)
	require.Equal(t, int32(600), cp.ContactPolicy.Windows[0].StartMinute)
	_, err = srv.SetContactPolicy(ctx, &schedulerv1.SetContactPolicyRequest{ContactPolicy: &schedulerv1.ContactPolicy{TimeZone: "Nowhere/Else"}})
	require.Equal(t, codes.InvalidArgument, code(ctx, err))

	planService(t, ctx, srv, "s-1", "purchase", now)
	list, err := srv.ListPlannedVisits(ctx, &schedulerv1.ListPlannedVisitsRequest{CustomerId: "c-1", Channel: typesv1.Channel_CHANNEL_PHONE,
		DueFrom: timestamppb.New(now), DueTo: timestamppb.New(now.Add(3 * day))})
	require.NoError(t, err)
	require.Len(t, list.Visits, 1)
	v := list.Visits[0]
	empty, err := srv.ListPlannedVisits(ctx, &schedulerv1.ListPlannedVisitsRequest{PolicyId: "other"})
	require.NoError(t, err)
	require.Empty(t, empty.Visits)

	ex, err := srv.ExplainVisit(ctx, &schedulerv1.ExplainVisitRequest{VisitId: v.Id})
	require.NoError(t, err)
	require.Equal(t, "builtin-appliance-purchase", ex.Policy.Id)
	require.Contains(t, ex.SourceRule, "seed 001")
	require.Equal(t, 1.0, ex.SampleRate)
	var kinds []string
	for _, d := range ex.Decisions {
		kinds = append(kinds, d.Kind)
	}
	require.Equal(t, []string{"rule", "anchor", "window"}, kinds, "18:00 in Shanghai is outside the windows; a step for every service (rate 1) needs no sampling decision")

	at := now.Add(4 * day)
	rs, err := srv.ReschedulePlannedVisit(ctx, &schedulerv1.ReschedulePlannedVisitRequest{VisitId: v.Id, DueAt: timestamppb.New(at), Reason: "customer travels"})
	require.NoError(t, err)
	require.Equal(t, at, rs.Visit.DueAt.AsTime())
	require.Contains(t, rs.Visit.Reason, "customer travels")
	require.True(t, rs.Visit.CustomerChosen, "the customer chose the time: windows will not move it")
	_, err = srv.ReschedulePlannedVisit(ctx, &schedulerv1.ReschedulePlannedVisitRequest{VisitId: v.Id, DueAt: timestamppb.New(now.Add(-day))})
	require.Equal(t, codes.InvalidArgument, code(ctx, err))

	c, err := srv.CancelPlannedVisit(ctx, &schedulerv1.CancelPlannedVisitRequest{VisitId: v.Id, Reason: "customer moved abroad"})
	require.NoError(t, err)
	require.Equal(t, "cancelled", c.Visit.Status)
	var n int
	require.NoError(t, srv.App.DB.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE subject = 'huifang.events.visit.cancelled'`).Scan(&n))
	require.Equal(t, 1, n)
	_, err = srv.CancelPlannedVisit(ctx, &schedulerv1.CancelPlannedVisitRequest{VisitId: v.Id, Reason: "again"})
	require.Equal(t, codes.FailedPrecondition, code(ctx, err))
	_, err = srv.ExplainVisit(ctx, &schedulerv1.ExplainVisitRequest{VisitId: "nope"})
	require.Equal(t, codes.NotFound, code(ctx, err))
}

// A visit that failed to fire is shown by ListPlannedVisits (status failed,
// the error as its reason) and ExplainVisit (a fire_failed decision);
// ReschedulePlannedVisit retries it (planned again, not the customer's
// choice), CancelPlannedVisit gives it up.
func TestFailedVisitShownRetriedCancelled(t *testing.T) {
	ctx, srv := setup(t)
	planService(t, ctx, srv, "s-1", "purchase", now)
	planService(t, ctx, srv, "s-2", "purchase", now)
	_, err := srv.App.DB.Exec(ctx, `UPDATE planned_visits SET due_at = $1, customer = '{"id":"c-1","phone":13800138000}'`, now)
	require.NoError(t, err)
	n, err := srv.App.FireDue(ctx, 10)
	require.NoError(t, err)
	require.Equal(t, 2, n)

	list, err := srv.ListPlannedVisits(ctx, &schedulerv1.ListPlannedVisitsRequest{Status: "failed"})
	require.NoError(t, err)
	require.Len(t, list.Visits, 2)
	v := list.Visits[0]
	require.Equal(t, "failed", v.Status)
	require.Contains(t, v.Reason, "firing failed: the customer snapshot of visit "+v.Id+" cannot be decoded")
	ex, err := srv.ExplainVisit(ctx, &schedulerv1.ExplainVisitRequest{VisitId: v.Id})
	require.NoError(t, err)
	last := ex.Decisions[len(ex.Decisions)-1]
	require.Equal(t, "fire_failed", last.Kind)
	require.Equal(t, v.Reason, last.Detail)
	require.Equal(t, now, last.At.AsTime())

	rs, err := srv.ReschedulePlannedVisit(ctx, &schedulerv1.ReschedulePlannedVisitRequest{VisitId: v.Id, DueAt: timestamppb.New(now), Reason: "snapshot repaired"})
	require.NoError(t, err)
	require.Equal(t, "planned", rs.Visit.Status)
	require.False(t, rs.Visit.CustomerChosen)
	require.Contains(t, rs.Visit.Reason, "retried by an operator")
	require.Contains(t, rs.Visit.Reason, "snapshot repaired")

	c, err := srv.CancelPlannedVisit(ctx, &schedulerv1.CancelPlannedVisitRequest{VisitId: list.Visits[1].Id, Reason: "customer data lost"})
	require.NoError(t, err)
	require.Equal(t, "cancelled", c.Visit.Status)
	left, err := srv.ListPlannedVisits(ctx, &schedulerv1.ListPlannedVisitsRequest{Status: "failed"})
	require.NoError(t, err)
	require.Empty(t, left.Visits)
}

// A simulation decides at most app.MaxSimOutcomes visits. The issue's
// request (an hourly step over three years, 20 services: 525,640 outcomes
// and 727 MiB on the scheduler before the bound) is refused before its load
// is built, naming the fields that make it, and allocates next to nothing;
// a request within the bound runs.
func TestSimulatePolicyBounded(t *testing.T) {
	ctx, srv := setup(t)
	req := &schedulerv1.SimulatePolicyRequest{}
	require.NoError(t, protojson.Unmarshal([]byte(`{"policy":{"name":"hourly","trigger":{"service_types":["repair"]},
	  "steps":[{"offset":"0s","channel":"CHANNEL_PHONE","every":"3600s"}]},
	  "synthetic":{"services_per_day":20,"days":1},"horizon":"94608000s","from":"2026-12-01T00:00:00Z"}`), req))

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := srv.SimulatePolicy(ctx, req)
	runtime.ReadMemStats(&after)
	st := status.Convert(grpcserver.Status(ctx, servicetest.Logger(), err))
	require.Equal(t, codes.InvalidArgument, st.Code(), st.Message())
	var fields []string
	for _, d := range st.Details() {
		for _, v := range d.(*errdetails.BadRequest).GetFieldViolations() {
			fields = append(fields, v.GetField())
			m := regexp.MustCompile(`would make the simulation decide about (\d+) visits; one simulation decides at most 10000 `).FindStringSubmatch(v.GetDescription())
			require.NotNil(t, m, v.GetDescription())
			n, _ := strconv.Atoi(m[1])
			require.InDelta(t, 525640, n, 200, "the estimate is close to the count of the run")
		}
	}
	require.Equal(t, []string{"synthetic.services_per_day", "synthetic.days", "horizon", "policy.steps[0].every"}, fields)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(8<<20), "refused before the run (which allocates ~1.7 GiB)")

	// One service, hourly for 9,000 hours: 9,002 outcomes, within the bound.
	req.Synthetic.ServicesPerDay = 1
	req.Horizon = durationpb.New(9000 * time.Hour)
	resp, err := srv.SimulatePolicy(ctx, req)
	require.NoError(t, err)
	require.EqualValues(t, 1, resp.Services)
	require.EqualValues(t, 9002, resp.Visits+resp.Suppressed)

	// A stored policy is named by its id.
	p := create(t, ctx, srv, `{"policy":{"name":"hourly","trigger":{"service_types":["repair"]},"steps":[{"offset":"0s","channel":"CHANNEL_PHONE","every":"3600s"}]}}`)
	_, err = srv.SimulatePolicy(ctx, &schedulerv1.SimulatePolicyRequest{PolicyId: p.Id, Synthetic: &schedulerv1.SyntheticLoad{ServicesPerDay: 2, Days: 1},
		Horizon: durationpb.New(9000 * time.Hour)})
	st = status.Convert(grpcserver.Status(ctx, servicetest.Logger(), err))
	require.Equal(t, codes.InvalidArgument, st.Code())
	require.Contains(t, st.Message(), "policy_id: together with synthetic.services_per_day, synthetic.days, horizon would make the simulation decide about 18009 visits")
}
