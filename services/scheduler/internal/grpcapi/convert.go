package grpcapi

import (
	"strings"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	calendar "github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

func dur(d *durationpb.Duration) policy.Duration { return policy.Duration(d.AsDuration()) }

func fromProto(in *schedulerv1.Policy) policy.Policy {
	t := in.GetTrigger()
	p := policy.Policy{
		Name:       strings.TrimSpace(in.GetName()),
		SourceRule: in.GetSourceRule(),
		Trigger: policy.Trigger{
			ServiceTypes:      t.GetServiceTypes(),
			OrgUnits:          t.GetOrgUnits(),
			Tiers:             t.GetTiers(),
			ProductCategories: t.GetProductCategories(),
			Severities:        t.GetSeverities(),
			Attributes:        t.GetAttributes(),
			OncePerCustomer:   t.GetOncePerCustomer(),
		},
		Stop: policy.Stop{
			ServiceTypes: in.GetStop().GetServiceTypes(),
			Answered:     in.GetStop().GetAnswered(),
			After:        dur(in.GetStop().GetAfter()),
		},
	}
	for _, st := range in.GetSteps() {
		rate := 1.0
		if st.SampleRate != nil {
			rate = st.GetSampleRate()
		}
		s := policy.Step{
			Anchor: policy.Anchor{
				From: st.GetAnchor().GetFrom(), Months: int(st.GetAnchor().GetMonths()),
				Days: int(st.GetAnchor().GetDays()), MileageKm: int(st.GetAnchor().GetMileageKm()),
				LaterOf: st.GetAnchor().GetLaterOf(),
			},
			Offset:          dur(st.GetOffset()),
			Window:          dur(st.GetWindow()),
			Within:          dur(st.GetWithin()),
			WithinMonths:    int(st.GetWithinMonths()),
			Channel:         policy.Channel(st.GetChannel()),
			SampleRate:      rate,
			Group:           st.GetGroup(),
			GroupBySeverity: st.GetGroupBySeverity(),
			Every:           dur(st.GetEvery()),
			EveryMonths:     int(st.GetEveryMonths()),
			OnHolidays:      st.GetOnHolidays(),
			AlignTo:         st.GetAlignTo(),
			MaxOccurrences:  int(st.GetMaxOccurrences()),
			OnMilestones:    st.GetOnMilestones(),
			Before:          dur(st.GetBefore()),
		}
		for _, se := range st.GetSeasons() {
			s.Seasons = append(s.Seasons, policy.Season{Name: se.GetName(), From: se.GetFrom(), To: se.GetTo(), Every: dur(se.GetEvery())})
		}
		p.Steps = append(p.Steps, s)
	}
	return p
}

func pdur(d policy.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d.D())
}

func toProto(p policy.Policy) *schedulerv1.Policy {
	out := &schedulerv1.Policy{
		Id: p.ID, TenantId: p.Tenant, Name: p.Name, Version: int32(p.Version),
		Trigger: &schedulerv1.Trigger{
			ServiceTypes: p.Trigger.ServiceTypes, OrgUnits: p.Trigger.OrgUnits, Tiers: p.Trigger.Tiers,
			ProductCategories: p.Trigger.ProductCategories, Severities: p.Trigger.Severities,
			Attributes: p.Trigger.Attributes, OncePerCustomer: p.Trigger.OncePerCustomer,
		},
		Active:     p.Active,
		Builtin:    p.Builtin,
		SourceRule: p.SourceRule,
		Pack:       p.Pack,
		// A built-in the tenant switched on or off for itself.
		TenantOverride: p.TenantOverride,
		SupersededBy:   p.SupersededBy,
	}
	if !p.CreatedAt.IsZero() {
		out.CreatedAt = timestamppb.New(p.CreatedAt)
	}
	if len(p.Stop.ServiceTypes) > 0 || p.Stop.Answered || p.Stop.After != 0 {
		out.Stop = &schedulerv1.Stop{ServiceTypes: p.Stop.ServiceTypes, Answered: p.Stop.Answered, After: pdur(p.Stop.After)}
	}
	for _, st := range p.Steps {
		rate := st.SampleRate
		s := &schedulerv1.Step{
			Offset: durationpb.New(st.Offset.D()), Window: durationpb.New(st.Window.D()),
			Channel: typesv1.Channel(st.Channel), SampleRate: &rate, Group: st.Group,
			GroupBySeverity: st.GroupBySeverity, Every: pdur(st.Every), OnHolidays: st.OnHolidays,
			AlignTo: st.AlignTo, MaxOccurrences: int32(st.MaxOccurrences), OnMilestones: st.OnMilestones,
			Within: pdur(st.Within), WithinMonths: int32(st.WithinMonths), EveryMonths: int32(st.EveryMonths),
			Before: pdur(st.Before),
		}
		if st.Anchor != (policy.Anchor{}) {
			s.Anchor = &schedulerv1.Anchor{From: st.Anchor.From, Months: int32(st.Anchor.Months), Days: int32(st.Anchor.Days), MileageKm: int32(st.Anchor.MileageKm), LaterOf: st.Anchor.LaterOf}
		}
		for _, se := range st.Seasons {
			s.Seasons = append(s.Seasons, &schedulerv1.Season{Name: se.Name, From: se.From, To: se.To, Every: durationpb.New(se.Every.D())})
		}
		out.Steps = append(out.Steps, s)
	}
	return out
}

func visitToProto(v visit.Visit) *schedulerv1.PlannedVisit {
	out := &schedulerv1.PlannedVisit{
		Id: v.ID, TenantId: v.Tenant, ServiceId: v.ServiceID, CustomerId: v.CustomerID, PolicyId: v.PolicyID,
		PolicyVersion: int32(v.PolicyVersion), Step: int32(v.Step), Channel: typesv1.Channel(v.Channel),
		DueAt: timestamppb.New(v.DueAt), Deadline: timestamppb.New(v.Deadline), Status: v.Status, Reason: v.Reason,
		OrgUnit: v.OrgUnit, ServiceType: v.ServiceType, Occurrence: int32(v.Occurrence), Group: v.Group,
		NominalAt: timestamppb.New(v.Nominal), CustomerChosen: v.CustomerChosen, Late: v.Late(),
	}
	if !v.FiredAt.IsZero() {
		out.FiredAt = timestamppb.New(v.FiredAt)
	}
	out.Forecast, out.ForecastReason = v.ForecastWords()
	return out
}

func windowFrom(w *typesv1.ContactWindow) calendar.Window {
	return calendar.Window{Start: int(w.GetStartMinute()), End: int(w.GetEndMinute())}
}

func windowToProto(w calendar.Window) *typesv1.ContactWindow {
	return &typesv1.ContactWindow{StartMinute: int32(w.Start), EndMinute: int32(w.End)}
}

func rulesFromProto(in *schedulerv1.ContactPolicy) contact.Rules {
	r := contact.Rules{
		Calendar:         calendar.Calendar{TimeZone: in.GetTimeZone(), Holidays: in.GetHolidays(), AvoidHolidays: in.GetAvoidHolidays()},
		DislikesCallsGap: dur(in.GetDislikesCallsGap()),
	}
	for _, w := range in.GetWindows() {
		r.Windows = append(r.Windows, windowFrom(w))
	}
	if q := in.GetQuietHours(); q != nil {
		w := windowFrom(q)
		r.Quiet = &w
	}
	for _, m := range in.GetMilestones() {
		r.Milestones = append(r.Milestones, contact.Milestone{Date: m.GetDate(), Kind: m.GetKind(), Name: m.GetName(), Project: m.GetProject()})
	}
	for _, c := range in.GetCaps() {
		r.Caps = append(r.Caps, contact.Cap{Channel: policy.Channel(c.GetChannel()), Max: int(c.GetMax()), Per: dur(c.GetPer())})
	}
	return r
}

func rulesToProto(r contact.Rules) *schedulerv1.ContactPolicy {
	out := &schedulerv1.ContactPolicy{TimeZone: r.TimeZone, Holidays: r.Holidays, AvoidHolidays: r.AvoidHolidays, DislikesCallsGap: pdur(r.DislikesCallsGap)}
	for _, w := range r.Windows {
		out.Windows = append(out.Windows, windowToProto(w))
	}
	if r.Quiet != nil {
		out.QuietHours = windowToProto(*r.Quiet)
	}
	for _, m := range r.Milestones {
		out.Milestones = append(out.Milestones, &schedulerv1.Milestone{Date: m.Date, Kind: m.Kind, Name: m.Name, Project: m.Project})
	}
	for _, c := range r.Caps {
		out.Caps = append(out.Caps, &schedulerv1.FrequencyCap{Channel: typesv1.Channel(c.Channel), Max: int32(c.Max), Per: durationpb.New(c.Per.D())})
	}
	return out
}
