package grpcapi

import (
	"context"
	"fmt"
	"slices"
	"time"

	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/scheduler/internal/engine"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

// Bounds of a simulation, so a dry run stays a dry run.
const (
	maxSimServices = 200_000
	maxSimDays     = 366
	defaultHorizon = 90 * 24 * time.Hour
)

// SimulatePolicy runs a policy over the tenant's past services or a synthetic
// load, with the tenant's contact policy, in memory, and counts the visits it
// would create per day, channel and group.
func (s *Server) SimulatePolicy(ctx context.Context, req *schedulerv1.SimulatePolicyRequest) (*schedulerv1.SimulatePolicyResponse, error) {
	t := tenant(req.GetTenantId())
	var p policy.Policy
	switch {
	case req.GetPolicy() != nil:
		p = fromProto(req.GetPolicy())
		if err := policy.Validate(p); err != nil {
			return nil, err
		}
		p.ID, p.Version = "draft", 1
	case req.GetPolicyId() != "":
		got, err := s.Store.GetPolicy(ctx, t, req.GetPolicyId(), 0)
		if err != nil {
			return nil, grpcErr(err, "policy "+req.GetPolicyId())
		}
		p = got
	default:
		return nil, invalid.New("policy", "is required (or policy_id)")
	}
	p.Tenant, p.Active = t, true

	var services []policy.Service
	switch syn := req.GetSynthetic(); {
	case syn != nil:
		var l invalid.List
		if syn.GetServicesPerDay() < 1 {
			l.Add("synthetic.services_per_day", "must be at least 1")
		}
		if syn.GetDays() < 1 || syn.GetDays() > maxSimDays {
			l.Add("synthetic.days", fmt.Sprintf("must be 1–%d", maxSimDays))
		}
		if int64(syn.GetServicesPerDay())*int64(syn.GetDays()) > maxSimServices {
			l.Add("synthetic.services_per_day", fmt.Sprintf("times days must be at most %d", maxSimServices))
		}
		if err := l.Err(); err != nil {
			return nil, err
		}
		start := s.now().Truncate(24 * time.Hour)
		if req.GetFrom() != nil {
			start = req.GetFrom().AsTime()
		}
		services = synthetic(t, start, syn, p.Trigger.ServiceTypes)
	case req.GetFrom() != nil && req.GetTo() != nil:
		from, to := req.GetFrom().AsTime(), req.GetTo().AsTime()
		if !to.After(from) {
			return nil, invalid.New("to", "must be after from")
		}
		got, err := s.Store.Services(ctx, t, from, to, maxSimServices)
		if err != nil {
			return nil, err
		}
		services = got
	default:
		return nil, invalid.New("synthetic", "is required when from and to are not both set")
	}
	rules, err := s.Store.ContactRules(ctx, t)
	if err != nil {
		return nil, err
	}
	horizon := defaultHorizon
	if req.GetHorizon() != nil {
		horizon = req.GetHorizon().AsDuration()
		if horizon <= 0 || horizon > 3*365*24*time.Hour {
			return nil, invalid.New("horizon", "must be above 0 and at most 3 years")
		}
	}
	events := make([]engine.Event, len(services))
	var last time.Time
	for i := range services {
		events[i] = engine.Event{At: services[i].CompletedAt, Service: &services[i]}
		if services[i].CompletedAt.After(last) {
			last = services[i].CompletedAt
		}
	}
	out := engine.Sim{Policies: []policy.Policy{p}, Rules: rules}.Run(events, last.Add(horizon))
	return summarise(len(services), out), nil
}

func pick(list []string, i int) string {
	if len(list) == 0 {
		return ""
	}
	return list[i%len(list)]
}

// synthetic spreads services evenly over each day from 08:00 to 18:00 UTC.
func synthetic(t string, start time.Time, syn *schedulerv1.SyntheticLoad, types []string) []policy.Service {
	if len(syn.GetServiceTypes()) > 0 {
		types = syn.GetServiceTypes()
	}
	per := int(syn.GetServicesPerDay())
	out := make([]policy.Service, 0, per*int(syn.GetDays()))
	step := 10 * time.Hour / time.Duration(per)
	n := 0
	for d := range int(syn.GetDays()) {
		day := start.AddDate(0, 0, d).Add(8 * time.Hour)
		for j := range per {
			out = append(out, policy.Service{
				Tenant: t, ID: fmt.Sprintf("synthetic-%d", n), Type: pick(types, n), CustomerID: fmt.Sprintf("synthetic-customer-%d", n),
				CompletedAt: day.Add(time.Duration(j) * step), Tier: pick(syn.GetTiers(), n), OrgUnit: pick(syn.GetOrgUnits(), n),
				Severity: pick(syn.GetSeverities(), n),
			})
			n++
		}
	}
	return out
}

func summarise(services int, out []engine.Outcome) *schedulerv1.SimulatePolicyResponse {
	resp := &schedulerv1.SimulatePolicyResponse{Services: int32(services), PerChannel: map[string]int32{}, PerGroup: map[string]int32{}}
	days := map[string]int32{}
	for _, o := range out {
		if o.Status != "due" && o.Status != "planned" {
			resp.Suppressed++
			continue
		}
		resp.Visits++
		days[o.DueAt.UTC().Format(time.DateOnly)]++
		resp.PerChannel[policy.ChannelName(o.Channel)]++
		g := o.Group
		if g == "" {
			g = "(any)"
		}
		resp.PerGroup[g]++
	}
	keys := make([]string, 0, len(days))
	for k := range days {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		resp.PerDay = append(resp.PerDay, &schedulerv1.DayCount{Date: k, Visits: days[k]})
		resp.PeakDayVisits = max(resp.PeakDayVisits, days[k])
	}
	return resp
}
