package policy

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func day(d int) time.Duration { return time.Duration(d) * 24 * time.Hour }

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"0s", 0}, {"3d", day(3)}, {"2w", day(14)}, {"-14d", -day(14)}, {"1d12h", day(1) + 12*time.Hour}, {"90m", 90 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			back, err := ParseDuration(FormatDuration(got))
			require.NoError(t, err)
			require.Equal(t, got, back)
		})
	}
	_, err := ParseDuration("3 days")
	require.Error(t, err)
	var d Duration
	require.NoError(t, json.Unmarshal([]byte(`86400000000000`), &d), "older specs stored nanoseconds")
	require.Equal(t, day(1), d.D())
}

func TestTriggerConditions(t *testing.T) {
	p := Policy{Tenant: "t", Active: true, Trigger: Trigger{
		ServiceTypes: []string{"complaint_closed"}, Tiers: []string{"key"}, ProductCategories: []string{"fridge"},
		Severities: []string{"major"}, Attributes: map[string]string{"channel": "online"},
	}}
	ok := Service{Tenant: "t", Type: "complaint_closed", Tier: "key", ProductCategory: "fridge", Severity: "major", Attributes: map[string]string{"channel": "online"}}
	require.True(t, p.Matches(ok))
	for name, mut := range map[string]func(*Service){
		"tier":      func(s *Service) { s.Tier = "normal" },
		"category":  func(s *Service) { s.ProductCategory = "tv" },
		"severity":  func(s *Service) { s.Severity = "general" },
		"attribute": func(s *Service) { s.Attributes = map[string]string{"channel": "store"} },
	} {
		t.Run(name, func(t *testing.T) {
			s := ok
			mut(&s)
			require.False(t, p.Matches(s))
		})
	}
}

// Seed 000 (auto dealer): first maintenance at 3 months or 3,000 km, whichever comes first.
func TestAnchorEarlierOfDateAndMileage(t *testing.T) {
	a := Anchor{Months: 3, MileageKm: 3000}
	base := time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		attrs map[string]string
		want  time.Time
	}{
		{"slow driver: 3 months first", map[string]string{"km_per_day": "10"}, time.Date(2026, 4, 10, 9, 0, 0, 0, time.UTC)},
		{"fast driver: 3,000 km first", map[string]string{"km_per_day": "60"}, base.Add(day(50))},
		{"no habit known: 3 months", nil, time.Date(2026, 4, 10, 9, 0, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, ok := a.Time(Service{CompletedAt: base, Attributes: tc.attrs}, time.UTC)
			require.True(t, ok)
			require.Equal(t, tc.want, got)
		})
	}
	_, why, ok := Anchor{From: AnchorWarrantyUntil}.Time(Service{CompletedAt: base}, time.UTC)
	require.False(t, ok)
	require.Contains(t, why, "warranty_until")
	got, _, ok := Anchor{From: "attributes.insurance_due"}.Time(Service{Attributes: map[string]string{"insurance_due": "2027-03-01"}}, time.UTC)
	require.True(t, ok)
	require.Equal(t, time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC), got)
	require.Equal(t, time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC), addMonths(time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC), 1), "month ends are kept")
}

// Seed 002 (cement): peak season weekly, off season every 2 weeks.
func TestNextFollowsTheSeason(t *testing.T) {
	p := Policy{ID: "c", Name: "cement", Active: true, Steps: []Step{{Channel: ChannelPhone, SampleRate: 1, Every: Duration(day(14)),
		Seasons: []Season{{Name: "peak", From: "03-01", To: "06-30", Every: Duration(day(7))}}}}}
	prev := Visit{Step: 0, Nominal: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC), Planned: true}
	n, ok := p.Next(prev, Service{}, NoHolidays{}, false)
	require.True(t, ok)
	require.Equal(t, prev.Nominal.Add(day(7)), n.Nominal)
	prev.Nominal = time.Date(2026, 8, 1, 10, 0, 0, 0, time.UTC)
	n, _ = p.Next(prev, Service{}, NoHolidays{}, false)
	require.Equal(t, prev.Nominal.Add(day(14)), n.Nominal)
	n, _ = p.Next(prev, Service{}, NoHolidays{}, true)
	require.Equal(t, prev.Nominal.Add(day(28)), n.Nominal, "seed 002: lower the frequency for customers who dislike calls")
	p.Steps[0].MaxOccurrences = 1
	_, ok = p.Next(prev, Service{}, NoHolidays{}, false)
	require.False(t, ok)
}

func TestAlignQuarter(t *testing.T) {
	require.Equal(t, time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), alignQuarter(time.Date(2026, 5, 17, 8, 0, 0, 0, time.UTC), time.UTC))
	require.Equal(t, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), alignQuarter(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), time.UTC))
	require.Equal(t, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), alignQuarter(time.Date(2026, 12, 31, 8, 0, 0, 0, time.UTC), time.UTC))
}

// A policy that cannot fire is refused with a violation per field (issue #4, bad input).
func TestValidateRefusesPoliciesThatCannotFire(t *testing.T) {
	base := func() Policy {
		return Policy{Name: "p", Trigger: Trigger{ServiceTypes: []string{"repair"}}, Steps: []Step{{Channel: ChannelPhone, SampleRate: 1}}}
	}
	require.NoError(t, Validate(base()))
	tests := []struct {
		field string
		mut   func(*Policy)
	}{
		{"policy.trigger.service_types", func(p *Policy) { p.Trigger.ServiceTypes = nil }},
		{"policy.steps[0].window", func(p *Policy) { p.Steps[0].Window = Duration(-time.Hour) }},
		{"policy.steps[0].sample_rate", func(p *Policy) { p.Steps[0].SampleRate = 0 }},
		{"policy.steps[0].sample_rate", func(p *Policy) { p.Steps[0].SampleRate = 1.2 }},
		{"policy.steps[0].anchor.from", func(p *Policy) { p.Steps[0].Anchor.From = "birthday" }},
		{"policy.steps[0].offset", func(p *Policy) { p.Steps[0].Offset = Duration(-time.Hour) }},
		{"policy.steps[0].every", func(p *Policy) { p.Steps[0].Every = Duration(time.Minute) }},
		{"policy.steps[0].seasons[0].from", func(p *Policy) {
			p.Steps[0].Seasons = []Season{{Name: "peak", From: "13-01", To: "06-30", Every: Duration(day(7))}}
		}},
		{"policy.trigger.severities[0]", func(p *Policy) { p.Trigger.Severities = []string{"critical"} }},
		{"policy.steps[0].max_occurrences", func(p *Policy) { p.Steps[0].MaxOccurrences = 3 }},
		{"policy.steps[0].align_to", func(p *Policy) { p.Steps[0].AlignTo = "month" }},
		{"policy.steps[0].anchor.later_of", func(p *Policy) { p.Steps[0].Anchor.LaterOf = "service" }},
		{"policy.steps[0].anchor.later_of", func(p *Policy) { p.Steps[0].Anchor.LaterOf = "birthday" }},
		{"policy.steps[0].on_milestones[0]", func(p *Policy) { p.Steps[0].OnMilestones = []string{"Show Flat"} }},
		{"policy.steps[0].on_milestones", func(p *Policy) {
			p.Steps[0].OnMilestones, p.Steps[0].Every = []string{"launch"}, Duration(day(7))
		}},
		{"policy.steps[0].before", func(p *Policy) { p.Steps[0].Before = Duration(day(3)) }},
		{"policy.steps[0].before", func(p *Policy) {
			p.Steps[0].OnHolidays, p.Steps[0].Before = true, Duration(-day(3))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.field, func(t *testing.T) {
			p := base()
			tc.mut(&p)
			err := Validate(p)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.field)
		})
	}
	p := base()
	p.Steps[0].Anchor.From = AnchorWarrantyUntil
	p.Steps[0].Offset = Duration(-day(30))
	require.NoError(t, Validate(p), "before a date anchor is allowed")
}

// Seed 000 (auto): customers past warranty and absent 6+ months: the anchor is
// the later of 6 months after the last visit and the warranty's end.
func TestAnchorLaterOf(t *testing.T) {
	visit := time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)
	a := Anchor{Months: 6, LaterOf: AnchorWarrantyUntil}
	tests := []struct {
		name     string
		warranty time.Time
		want     time.Time
		ok       bool
	}{
		{"warranty ended before the 6 months", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 8, 1, 10, 0, 0, 0, time.UTC), true},
		{"warranty ends after the 6 months", time.Date(2027, 1, 10, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 10, 0, 0, 0, 0, time.UTC), true},
		{"no warranty date: not planned", time.Time{}, time.Time{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, why, ok := a.Time(Service{CompletedAt: visit, WarrantyUntil: tc.warranty}, time.UTC)
			require.Equal(t, tc.ok, ok, why)
			require.Equal(t, tc.want, got)
		})
	}
}

type milestones []time.Time

func (milestones) Zone() *time.Location                    { return time.UTC }
func (milestones) NextHoliday(time.Time) (time.Time, bool) { return time.Time{}, false }
func (m milestones) NextMilestone(t time.Time, _ string, _ []string) (time.Time, string, bool) {
	for _, d := range m {
		if d.After(t) {
			return d, d.Format(time.DateOnly), true
		}
	}
	return time.Time{}, "", false
}

// Seed 002 (real estate): referred VIPs only at project milestones; the series
// follows the calendar and ends after the last milestone.
func TestMilestoneSteps(t *testing.T) {
	at := func(m time.Month, d int) time.Time { return time.Date(2026, m, d, 0, 0, 0, 0, time.UTC) }
	cal := milestones{at(3, 1), at(3, 15), at(4, 18)}
	p := Policy{ID: "vip", Name: "vip", Version: 1, Steps: []Step{{Channel: ChannelPhone, SampleRate: 1, Window: Duration(day(2)), OnMilestones: []string{"launch"}}}}
	require.True(t, p.Steps[0].Recurring())
	s := Service{ID: "r", CompletedAt: at(3, 3)}
	first := plan(t, p, s, cal)[0]
	require.True(t, first.Planned)
	require.Equal(t, at(3, 15), first.DueAt, "the first milestone after the service")
	require.Equal(t, at(3, 17), first.Deadline)
	next, ok := p.Next(first, s, cal, false)
	require.True(t, ok)
	require.Equal(t, at(4, 18), next.DueAt)
	_, ok = p.Next(next, s, cal, false)
	require.False(t, ok, "no milestone ahead: the series ends")
	none := plan(t, p, s, NoHolidays{})[0]
	require.False(t, none.Planned)
	require.Contains(t, none.Reason, "no milestone (launch) ahead")
}

// Seed 002 (real estate, 第二条(二)1): referred VIPs are told of a milestone
// in advance (提前以电话或短信的方式向客户告知): with before, each visit falls
// that long before its milestone; a milestone nearer than that to the
// start is announced at once, and that visit covers the milestones less
// than before ahead of it, which get no second one.
func TestMilestoneStepsBefore(t *testing.T) {
	at := func(m time.Month, d int) time.Time { return time.Date(2026, m, d, 0, 0, 0, 0, time.UTC) }
	p := Policy{ID: "vip", Name: "vip", Version: 1, Trigger: Trigger{ServiceTypes: []string{"referral"}}, Steps: []Step{{Channel: ChannelPhone, SampleRate: 1, Window: Duration(day(2)),
		OnMilestones: []string{"launch"}, Before: Duration(day(3))}}}
	require.NoError(t, Validate(p))

	cal := milestones{at(3, 15), at(4, 18), at(4, 19)}
	s := Service{ID: "r", CompletedAt: at(3, 3).Add(10 * time.Hour)}
	first := plan(t, p, s, cal)[0]
	require.True(t, first.Planned)
	require.Equal(t, at(3, 12), first.DueAt, "3 days before the launch of 15 March")
	require.Equal(t, at(3, 14), first.Deadline, "due + window: the day before the launch")
	require.True(t, first.OnDay, "midnight of a calendar date: made when the day starts, not at midnight")
	require.Contains(t, first.Reason, "due 3d before the next milestone 2026-03-15")
	second, ok := p.Next(first, s, cal, false)
	require.True(t, ok)
	require.Equal(t, at(4, 15), second.DueAt)
	third, ok := p.Next(second, s, cal, false)
	require.True(t, ok)
	require.Equal(t, at(4, 16), third.DueAt, "the next day's milestone gets its own notice")
	_, ok = p.Next(third, s, cal, false)
	require.False(t, ok)

	// Referred on 13 March: the launch of 15 March is less than 3 days
	// ahead, so it is announced at once; the next notice is 3 days before 18 April.
	late := Service{ID: "r2", CompletedAt: at(3, 13).Add(10 * time.Hour)}
	first = plan(t, p, late, cal)[0]
	require.Equal(t, late.CompletedAt, first.DueAt)
	require.Equal(t, late.CompletedAt.Add(day(2)), first.Deadline)
	require.Contains(t, first.Reason, "due at once: the next milestone 2026-03-15 is less than 3d ahead")
	second, ok = p.Next(first, late, cal, false)
	require.True(t, ok)
	require.Equal(t, at(4, 15), second.DueAt)

	// Referred on 16 April: 18 and 19 April are both less than 3 days ahead;
	// the visit at once announces both, and the series ends.
	cover := Service{ID: "r3", CompletedAt: at(4, 16).Add(10 * time.Hour)}
	first = plan(t, p, cover, cal)[0]
	require.Equal(t, cover.CompletedAt, first.DueAt)
	_, ok = p.Next(first, cover, cal, false)
	require.False(t, ok, "19 April was announced with 18 April")

	// Without before, nothing changes: on the milestone.
	p.Steps[0].Before = 0
	require.Equal(t, at(3, 15), plan(t, p, s, cal)[0].DueAt)
}

// Seed 000 (auto, 7: 服务节活动…提前一周内): before works on holidays too.
func TestHolidayStepsBefore(t *testing.T) {
	at := func(m time.Month, d int) time.Time { return time.Date(2026, m, d, 0, 0, 0, 0, time.UTC) }
	p := Policy{ID: "h", Name: "h", Version: 1, Steps: []Step{{Channel: ChannelSMS, SampleRate: 1, Window: Duration(day(1)),
		OnHolidays: true, Before: Duration(day(7))}}}
	cal := holidays{at(5, 1), at(10, 1)}
	s := Service{ID: "s", CompletedAt: at(3, 1)}
	first := plan(t, p, s, cal)[0]
	require.Equal(t, at(4, 24), first.DueAt)
	next, ok := p.Next(first, s, cal, false)
	require.True(t, ok)
	require.Equal(t, at(9, 24), next.DueAt)
}

type holidays []time.Time

func (holidays) Zone() *time.Location { return time.UTC }
func (h holidays) NextHoliday(t time.Time) (time.Time, bool) {
	for _, d := range h {
		if d.After(t) {
			return d, true
		}
	}
	return time.Time{}, false
}
func (holidays) NextMilestone(time.Time, string, []string) (time.Time, string, bool) {
	return time.Time{}, "", false
}

// zoned is a calendar in a time zone, without holidays.
type zoned struct {
	NoHolidays
	loc *time.Location
}

func (z zoned) Zone() *time.Location { return z.loc }

// Issue 16 (every anchor in the tenant's time zone): the start of a quarter
// (seed 000 auto: churned customers listed each quarter), a date attribute
// (seed 000 auto: agency services due on a date) and calendar months are
// counted in the tenant's zone, Asia/Shanghai here, not in UTC.
func TestAnchorsInTheTenantsZone(t *testing.T) {
	sh, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	local := func(y int, m time.Month, d, h int) time.Time { return time.Date(y, m, d, h, 0, 0, 0, sh).UTC() }

	require.Equal(t, local(2026, 7, 1, 0), alignQuarter(local(2026, 5, 17, 8), sh), "midnight of 1 July in Shanghai: 30 June 16:00 UTC")
	require.Equal(t, local(2026, 7, 1, 0), alignQuarter(local(2026, 7, 1, 0), sh), "at the start of a quarter: that quarter")
	require.Equal(t, local(2026, 10, 1, 0), alignQuarter(time.Date(2026, 6, 30, 17, 0, 0, 0, time.UTC), sh),
		"30 June 17:00 UTC is 1 July 01:00 in Shanghai: the quarter has begun, the next one")

	due, desc, ok := Anchor{From: "attributes.due_date", Days: -14}.Time(Service{Attributes: map[string]string{"due_date": "2026-08-15"}}, sh)
	require.True(t, ok)
	require.Equal(t, local(2026, 8, 1, 0), due, "a date starts at midnight in Shanghai")
	require.Contains(t, desc, "2026-08-01")
	at, _, ok := Anchor{From: "attributes.event_date"}.Time(Service{Attributes: map[string]string{"event_date": "2026-05-20T09:00:00Z"}}, sh)
	require.True(t, ok)
	require.Equal(t, time.Date(2026, 5, 20, 9, 0, 0, 0, time.UTC), at, "a time keeps its own zone")

	// 30 January 20:00 UTC is 31 January 04:00 in Shanghai: a month later is 28 February 04:00 there.
	m, _, ok := Anchor{Months: 1}.Time(Service{CompletedAt: time.Date(2026, 1, 30, 20, 0, 0, 0, time.UTC)}, sh)
	require.True(t, ok)
	require.Equal(t, local(2026, 2, 28, 4), m)

	p := Policy{ID: "churn", Name: "churn", Version: 1, Active: true, Trigger: Trigger{ServiceTypes: []string{"maintenance"}},
		Steps: []Step{{Anchor: Anchor{Months: 6}, AlignTo: "quarter", Channel: ChannelPhone, SampleRate: 1}}}
	v := plan(t, p, Service{ID: "s", Type: "maintenance", CompletedAt: local(2026, 2, 10, 15)}, zoned{loc: sh})[0]
	require.Equal(t, local(2026, 10, 1, 0), v.DueAt, "6 months later (10 August), listed at the next quarter, midnight in Shanghai")
	require.True(t, v.OnDay, "due on a day: the contact policy picks the hour")
	require.Contains(t, v.Reason, "start of the quarter 2026-10-01")
	svc := plan(t, p, Service{ID: "s", Type: "maintenance", CompletedAt: local(2026, 2, 10, 15)}, NoHolidays{})[0]
	require.Equal(t, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), svc.DueAt, "a tenant without a zone: UTC")
	p.Steps[0].AlignTo = ""
	require.False(t, plan(t, p, Service{ID: "s", Type: "maintenance", CompletedAt: local(2026, 2, 10, 0)}, zoned{loc: sh})[0].OnDay,
		"counted from the service's time, even at midnight: not a day's visit")
}
