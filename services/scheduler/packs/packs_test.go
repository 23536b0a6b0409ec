package packs_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/engine"
	"github.com/huifang/huifang/services/scheduler/internal/policy"
	"github.com/huifang/huifang/services/scheduler/packs"
)

func day(n float64) time.Duration { return time.Duration(n * float64(24*time.Hour)) }

// load returns a pack's policies as LoadPolicyPack gives them to a tenant, ids = names.
func load(t *testing.T, name string) []policy.Policy {
	t.Helper()
	p, ok, err := packs.Get(name)
	require.NoError(t, err)
	require.True(t, ok, name)
	for i := range p.Policies {
		p.Policies[i].ID, p.Policies[i].Tenant, p.Policies[i].Version = p.Policies[i].Name, "t", 1
		p.Policies[i].Active = p.LoadsActive(p.Policies[i].Name)
	}
	return p.Policies
}

// switched returns the policies with the named ones turned on or off, as ActivatePolicy/DeactivatePolicy do.
func switched(ps []policy.Policy, on bool, names ...string) []policy.Policy {
	ps = slices.Clone(ps)
	for i := range ps {
		if slices.Contains(names, ps[i].Name) {
			ps[i].Active = on
		}
	}
	return ps
}

func svc(id, typ, customer string, at time.Time, opts ...func(*policy.Service)) engine.Event {
	s := &policy.Service{Tenant: "t", ID: id, Type: typ, CustomerID: customer, CompletedAt: at}
	for _, o := range opts {
		o(s)
	}
	return engine.Event{At: at, Service: s}
}

func attrs(kv ...string) func(*policy.Service) {
	return func(s *policy.Service) {
		s.Attributes = map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			s.Attributes[kv[i]] = kv[i+1]
		}
	}
}

func tier(x string) func(*policy.Service) { return func(s *policy.Service) { s.Tier = x } }

// line is one visit as the golden lists write it.
func line(pol string, step, occ int, ch int32, group string, due, deadline time.Time, status string) string {
	return fmt.Sprintf("%s#%d.%d %s %s due=%s deadline=%s %s", pol, step, occ, policy.ChannelName(ch), group,
		due.UTC().Format("2006-01-02T15:04"), deadline.UTC().Format("2006-01-02T15:04"), status)
}

func lines(out []engine.Outcome) []string {
	var ls []string
	for _, o := range out {
		ls = append(ls, line(o.PolicyID, o.Step, o.Occurrence, o.Channel, o.Group, o.DueAt, o.Deadline, o.Status))
	}
	return ls
}

func requireLines(t *testing.T, want []string, out []engine.Outcome) {
	t.Helper()
	got := lines(out)
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	require.Equal(t, want, got)
}

const (
	phone  = policy.ChannelPhone
	sms    = policy.ChannelSMS
	onsite = policy.ChannelOnsite
)

func TestEveryPackIsValid(t *testing.T) {
	all, err := packs.All()
	require.NoError(t, err)
	var names []string
	for _, p := range all {
		names = append(names, p.Name)
		require.NotEmpty(t, p.Policies)
		for _, pol := range p.Policies {
			require.NotEmpty(t, pol.SourceRule, "%s/%s names the seed rule it carries out", p.Name, pol.Name)
		}
	}
	require.Equal(t, []string{"appliance", "auto", "cement", "hospital", "property", "realestate", "standard003"}, names)
}

// Seed 001: new purchase +1–3 d; installation or repair +2–5 d; by phone.
func TestApplianceGolden(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	out := engine.Sim{Policies: load(t, "appliance")}.Run([]engine.Event{
		svc("s1", "purchase", "c1", t0),
		svc("s2", "installation", "c1", t0.Add(time.Hour)),
		svc("s3", "repair", "c2", t0.Add(2*time.Hour)),
		svc("s4", "maintenance", "c2", t0),
	}, t0.Add(day(30)))
	requireLines(t, []string{
		line("appliance-purchase-followup", 0, 0, phone, "followup", t0.Add(day(1)), t0.Add(day(3)), "due"),
		line("appliance-install-repair-followup", 0, 0, phone, "followup", t0.Add(time.Hour+day(2)), t0.Add(time.Hour+day(5)), "due"),
		line("appliance-install-repair-followup", 0, 0, phone, "followup", t0.Add(2*time.Hour+day(2)), t0.Add(2*time.Hour+day(5)), "due"),
	}, out)
}

// Seed 000 (property): closed complaints within 3 days for at least 50% with
// the role by severity (major ones on site); repairs within 1 month, 30%;
// community events within 1 month, 10%.
func TestPropertyGolden(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	sev := []string{"general", "urgent", "major"}
	role := map[string]string{"general": "property_assistant", "urgent": "department_supervisor", "major": "company_manager"}
	var evs []engine.Event
	n := 3000
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Minute)
		evs = append(evs,
			svc(fmt.Sprintf("cp-%d", i), "complaint_closed", fmt.Sprintf("c%d", i), at, func(s *policy.Service) { s.Severity = sev[i%3] }),
			svc(fmt.Sprintf("rp-%d", i), "repair", fmt.Sprintf("c%d", i), at),
			svc(fmt.Sprintf("ev-%d", i), "community_event", fmt.Sprintf("c%d", i), at))
	}
	// The programs of seed 000 1.6 (holidays, move-in, incidents) have their own test.
	sampled := switched(load(t, "property"), false, "property-holiday-visit", "property-move-in", "property-incident")
	out := engine.Sim{Policies: sampled}.Run(evs, t0.Add(day(90)))
	due := map[string]int{}
	for _, o := range out {
		if o.Status != "due" {
			require.Equal(t, "suppressed", o.Status)
			require.Contains(t, o.Reason, "sampled out: the quota is met")
			continue
		}
		due[o.PolicyID]++
		at := o.Service.CompletedAt
		require.Equal(t, at, o.DueAt)
		switch o.PolicyID {
		case "property-closed-complaint":
			// Seed 000 line 69 "投诉事情处理完毕后三天内进行回访": the deadline is
			// exactly 3 × 24 h after the closure, not on day 4.
			require.Equal(t, at.Add(day(3)), o.Deadline, "within 3 days of closure")
			require.Equal(t, role[o.Service.Severity], o.Group)
			// Seed 000 1.3 and 1.9: a major (third-class) complaint is followed up by the
			// company manager, on site, never by phone; the others by phone.
			want := policy.ChannelPhone
			if o.Service.Severity == "major" {
				want = policy.ChannelOnsite
			}
			require.Equal(t, int32(want), o.Channel, "severity %s", o.Service.Severity)
		case "property-repair":
			// Seed 000 line 71 "处理完毕后一个月内": one calendar month (2 March → 2 April).
			require.Equal(t, at.AddDate(0, 1, 0), o.Deadline, "within 1 calendar month")
			require.Equal(t, "property_assistant", o.Group)
		case "property-community-event":
			// Seed 000 line 73 "活动结束后一个月内": one calendar month.
			require.Equal(t, at.AddDate(0, 1, 0), o.Deadline, "within 1 calendar month")
			require.Equal(t, "community_culture_clerk", o.Group)
		}
	}
	// Seed 000 (property) lines 69, 71, 73: "回访率达50%", 30%, 10% are
	// minimums, met exactly by the quota (ceil(rate × eligible), one org
	// unit, all in March): 1,500, 900 and 300 of 3,000.
	require.Equal(t, map[string]int{"property-closed-complaint": 1500, "property-repair": 900, "property-community-event": 300}, due)
	again := engine.Sim{Policies: sampled}.Run(evs, t0.Add(day(90)))
	require.Equal(t, lines(out), lines(again), "sampling is deterministic: a rerun plans the same sample")
}

// Seed 000 (hospital): discharge day by phone, +1 week by phone, +1 month on
// site. The other hospital's policy, "within the first week", is its own
// policy, loaded off: a tenant switches it on (and the first one off) instead.
func TestHospitalGolden(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	history := []engine.Event{svc("d1", "discharge", "p1", t0)}
	out := engine.Sim{Policies: load(t, "hospital")}.Run(history, t0.Add(day(60)))
	requireLines(t, []string{
		line("hospital-discharge", 0, 0, phone, "nurse", t0, t0.Add(12*time.Hour), "due"),
		line("hospital-discharge", 1, 0, phone, "nurse", t0.Add(day(7)), t0.Add(day(9)), "due"),
		// seed 000 line 243 "出院后一个月": a calendar month, 2 March → 2 April.
		line("hospital-discharge", 2, 0, onsite, "nurse", t0.AddDate(0, 1, 0), t0.AddDate(0, 1, 7), "due"),
	}, out)

	firstWeek := switched(switched(load(t, "hospital"), false, "hospital-discharge"), true, "hospital-first-week")
	out = engine.Sim{Policies: firstWeek}.Run(history, t0.Add(day(60)))
	requireLines(t, []string{
		line("hospital-first-week", 0, 0, phone, "nurse", t0, t0.Add(day(7)), "due"),
	}, out)
}

// Seed 003: every served customer within 48 hours.
func TestStandard003Golden(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	out := engine.Sim{Policies: load(t, "standard003")}.Run([]engine.Event{
		svc("r1", "repair", "p1", t0), svc("m1", "maintenance", "p2", t0.Add(time.Hour)),
	}, t0.Add(day(5)))
	requireLines(t, []string{
		line("standard-48h", 0, 0, phone, "dispatcher", t0, t0.Add(48*time.Hour), "due"),
		line("standard-48h", 0, 0, phone, "dispatcher", t0.Add(time.Hour), t0.Add(49*time.Hour), "due"),
	}, out)
}

// Seed 000 (auto dealer): first maintenance at 3 months or 3,000 km with SMS 2
// weeks and a call 1 week before; next maintenance from the driving habit;
// warranty expiry SMS 1 month and a call 2 weeks before; agency services;
// special events SMS 3 d and a call 1 d before; survey within 3 d; churn each quarter.
func TestAutoGolden(t *testing.T) {
	d := func(y int, m time.Month, dd, h int) time.Time { return time.Date(y, m, dd, h, 0, 0, 0, time.UTC) }
	delivered := d(2026, 1, 10, 9)
	warranty := d(2029, 1, 10, 0)
	maint := d(2026, 4, 12, 10)
	out := engine.Sim{Policies: load(t, "auto")}.Run([]engine.Event{
		// slow driver: 20 km a day reaches 3,000 km after 150 days, so 3 months come first.
		svc("v1", "vehicle_delivery", "c1", delivered, attrs("km_per_day", "20"), func(s *policy.Service) { s.WarrantyUntil = warranty }),
		// fast driver: 60 km a day reaches 3,000 km after 50 days, before 3 months; no warranty date known.
		svc("v2", "vehicle_delivery", "c2", delivered, attrs("km_per_day", "60")),
		// c1 comes in for the first maintenance; the next is 5,000 km at 60 km a day (83 d 8 h) before 6 months.
		svc("m1", "maintenance", "c1", maint, attrs("km_per_day", "60"), func(s *policy.Service) { s.WarrantyUntil = warranty }),
		// c1 does not answer the warranty call: invited again, SMS the next day and a call 3 days later.
		{At: d(2028, 12, 27, 12), Unreachable: &engine.Failed{ServiceID: "v1", PolicyID: "auto-warranty-expiry", Step: 1}},
		// a failed survey call is not a warranty invitation: nothing more.
		{At: d(2026, 4, 13, 12), Unreachable: &engine.Failed{ServiceID: "m1", PolicyID: "auto-after-service-survey"}},
		// c3's warranty ended on 1 March, a month after a repair: absent 6 months and past warranty on 1 August.
		svc("r3", "repair", "c3", d(2026, 2, 1, 10), func(s *policy.Service) { s.WarrantyUntil = d(2026, 3, 1, 0) }),
		svc("a1", "agency_due", "c1", d(2026, 5, 1, 8), attrs("due_date", "2026-08-15")),
		svc("e1", "community_event", "c1", d(2026, 5, 1, 8), attrs("event_date", "2026-05-20T09:00:00Z")),
	}, d(2029, 2, 1, 0))
	nextMaint := maint.Add(day(83) + 8*time.Hour)
	requireLines(t, []string{
		line("auto-first-maintenance", 0, 0, sms, "crm", d(2026, 3, 27, 9), d(2026, 4, 3, 9), "due"),
		line("auto-first-maintenance", 1, 0, phone, "crm", d(2026, 4, 3, 9), d(2026, 4, 10, 9), "due"),
		line("auto-first-maintenance", 0, 0, sms, "crm", d(2026, 2, 15, 9), d(2026, 2, 22, 9), "due"),
		line("auto-first-maintenance", 1, 0, phone, "crm", d(2026, 2, 22, 9), d(2026, 3, 1, 9), "due"),
		// issue 16: a date's visits are made at 09:00, not at midnight (the tenant has no quiet hours).
		line("auto-warranty-expiry", 0, 0, sms, "crm", d(2028, 12, 10, 9), d(2028, 12, 24, 0), "due"),
		line("auto-warranty-expiry", 1, 0, phone, "crm", d(2028, 12, 27, 9), d(2029, 1, 10, 0), "due"),
		// v2 has no warranty date: the steps are not planned, and say why.
		line("auto-warranty-expiry", 0, 0, sms, "crm", delivered, delivered, "suppressed"),
		line("auto-warranty-expiry", 1, 0, phone, "crm", delivered, delivered, "suppressed"),
		// churn of c1 from the delivery is stopped by the maintenance; c2 never came back: listed at the quarter after 6 months.
		line("auto-churn", 0, 0, phone, "churn_recovery", d(2026, 10, 1, 9), d(2026, 10, 31, 0), "cancelled"),
		line("auto-churn", 0, 0, phone, "churn_recovery", d(2026, 10, 1, 9), d(2026, 10, 31, 0), "due"),
		line("auto-after-service-survey", 0, 0, phone, "service_survey", maint, maint.Add(day(3)), "due"),
		line("auto-next-maintenance", 0, 0, sms, "crm", nextMaint.Add(-day(14)), nextMaint.Add(-day(7)), "due"),
		line("auto-next-maintenance", 1, 0, phone, "crm", nextMaint.Add(-day(7)), nextMaint, "due"),
		line("auto-churn", 0, 0, phone, "churn_recovery", d(2027, 1, 1, 9), d(2027, 1, 31, 0), "due"),
		line("auto-agency-services", 0, 0, sms, "crm", d(2026, 7, 15, 9), d(2026, 7, 29, 0), "due"),
		line("auto-agency-services", 1, 0, phone, "crm", d(2026, 8, 1, 9), d(2026, 8, 15, 0), "due"),
		line("auto-special-events", 0, 0, sms, "crm", d(2026, 5, 17, 9), d(2026, 5, 19, 9), "due"),
		line("auto-special-events", 1, 0, phone, "crm", d(2026, 5, 19, 9), d(2026, 5, 20, 9), "due"),
		// warranty: the invitation failed (the call went unanswered), so c1 is invited again.
		line("auto-warranty-reinvite", 0, 0, sms, "crm", d(2028, 12, 28, 12), d(2028, 12, 31, 12), "due"),
		line("auto-warranty-reinvite", 1, 0, phone, "crm", d(2028, 12, 30, 12), d(2029, 1, 6, 12), "due"),
		// past warranty and absent 6 months: c1's delivery plan is ended by the maintenance; from the
		// maintenance, 6 months (Oct 2026) come before the warranty end (10 Jan 2029), so the later one counts.
		line("auto-past-warranty-absent", 0, 0, sms, "crm", d(2029, 1, 10, 9), d(2029, 1, 24, 0), "cancelled"),
		line("auto-past-warranty-absent", 1, 0, phone, "crm", d(2029, 1, 17, 9), d(2029, 1, 31, 0), "cancelled"),
		line("auto-past-warranty-absent", 0, 0, sms, "crm", d(2029, 1, 10, 9), d(2029, 1, 24, 0), "due"),
		line("auto-past-warranty-absent", 1, 0, phone, "crm", d(2029, 1, 17, 9), d(2029, 1, 31, 0), "due"),
		// v2 has no warranty date: not planned, and says why.
		line("auto-past-warranty-absent", 0, 0, sms, "crm", delivered, delivered, "suppressed"),
		line("auto-past-warranty-absent", 1, 0, phone, "crm", delivered, delivered, "suppressed"),
		// c3: 6 months after the repair, past the warranty.
		line("auto-past-warranty-absent", 0, 0, sms, "crm", d(2026, 8, 1, 10), d(2026, 8, 15, 10), "due"),
		line("auto-past-warranty-absent", 1, 0, phone, "crm", d(2026, 8, 8, 10), d(2026, 8, 22, 10), "due"),
		line("auto-after-service-survey", 0, 0, phone, "service_survey", d(2026, 2, 1, 10), d(2026, 2, 4, 10), "due"),
		line("auto-churn", 0, 0, phone, "churn_recovery", d(2026, 10, 1, 9), d(2026, 10, 31, 0), "due"),
	}, out)
}

// Seed 002 (cement): peak season a call every week and a visit every 2 weeks;
// off season a call every 2 weeks and a visit every month. Seed 000 (cement
// logistics): deliveries confirmed by phone the next day.
func TestCementGolden(t *testing.T) {
	d := func(m time.Month, dd int) time.Time { return time.Date(2026, m, dd, 8, 0, 0, 0, time.UTC) }
	// Seed 000's monthly minimum has its own test.
	care := switched(load(t, "cement"), false, "cement-logistics-monthly")
	out := engine.Sim{Policies: care}.Run([]engine.Event{
		svc("dl1", "delivery", "k1", d(2, 20)),
		svc("dl2", "delivery", "k1", d(3, 5)), // already in care: not enrolled twice
	}, d(4, 1))
	requireLines(t, []string{
		line("cement-delivery-confirmation", 0, 0, phone, "logistics", d(2, 21), d(2, 22), "due"),
		line("cement-delivery-confirmation", 0, 0, phone, "logistics", d(3, 6), d(3, 7), "due"),
		// calls: first a week after, off season +2 weeks, then weekly in the peak season (from March).
		line("cement-customer-care", 0, 0, phone, "sales", d(2, 27), d(3, 1), "due"),
		line("cement-customer-care", 0, 1, phone, "sales", d(3, 13), d(3, 15), "due"),
		line("cement-customer-care", 0, 2, phone, "sales", d(3, 20), d(3, 22), "due"),
		line("cement-customer-care", 0, 3, phone, "sales", d(3, 27), d(3, 29), "due"),
		line("cement-customer-care", 0, 4, phone, "sales", d(4, 3), d(4, 5), "planned"),
		// visits: first two weeks after, then every 2 weeks in the peak season.
		line("cement-customer-care", 1, 0, onsite, "sales", d(3, 6), d(3, 13), "due"),
		line("cement-customer-care", 1, 1, onsite, "sales", d(3, 20), d(3, 27), "due"),
		line("cement-customer-care", 1, 2, onsite, "sales", d(4, 3), d(4, 10), "planned"),
	}, out)
	// off season: visits monthly, calls every 2 weeks.
	out = engine.Sim{Policies: care}.Run([]engine.Event{svc("dl3", "delivery", "k2", d(12, 1))}, time.Date(2027, 1, 10, 0, 0, 0, 0, time.UTC))
	requireLines(t, []string{
		line("cement-delivery-confirmation", 0, 0, phone, "logistics", d(12, 2), d(12, 3), "due"),
		line("cement-customer-care", 0, 0, phone, "sales", d(12, 8), d(12, 10), "due"),
		line("cement-customer-care", 0, 1, phone, "sales", d(12, 22), d(12, 24), "due"),
		line("cement-customer-care", 0, 2, phone, "sales", d(12, 22).Add(day(14)), d(12, 24).Add(day(14)), "due"),
		line("cement-customer-care", 0, 3, phone, "sales", d(12, 22).Add(day(28)), d(12, 24).Add(day(28)), "planned"),
		line("cement-customer-care", 1, 0, onsite, "sales", d(12, 15), d(12, 22), "due"),
		// seed 002 line 16 "销售淡季…一个月走访一次": monthly is a calendar month, 15 December → 15 January.
		line("cement-customer-care", 1, 1, onsite, "sales", time.Date(2027, 1, 15, 8, 0, 0, 0, time.UTC), time.Date(2027, 1, 22, 8, 0, 0, 0, time.UTC), "planned"),
	}, out)
}

// Seed 002 (real estate): callers the same day; good leads within 3 days then
// weekly until they visit; class A visitors same day, within 3 days, then every
// 3 days; class D on holidays by SMS only; referred VIPs only at project
// milestones (launch, offers, show-flat opening); buyers same day, every 2
// weeks, at construction milestones, on holidays; calls only in the
// 10:00–11:30 and 15:30–17:00 windows (Asia/Shanghai).
func TestRealEstateGolden(t *testing.T) {
	u := func(m time.Month, dd, h, mi int) time.Time { return time.Date(2026, m, dd, h, mi, 0, 0, time.UTC) }
	rules := contact.Preset002()
	rules.TimeZone = "Asia/Shanghai"
	rules.Holidays = []string{"2026-04-04", "2026-05-01"}
	rules.Milestones = []contact.Milestone{
		{Date: "2026-03-15", Kind: "launch", Name: "sales launch", Project: "bay"},
		{Date: "2026-03-25", Kind: "launch", Project: "hill"}, // another project: not for bay's VIPs
		{Date: "2026-04-18", Kind: "offers", Name: "spring offers"},
		{Date: "2026-04-20", Kind: "construction", Name: "topping-out"},
		{Date: "2026-05-08", Kind: "show_flat_opening", Project: "bay"},
	}
	out := engine.Sim{Policies: load(t, "realestate"), Rules: rules}.Run([]engine.Event{
		svc("l1", "lead_call", "a", u(3, 2, 2, 0), tier("A")), // 10:00 in Shanghai
		svc("sv1", "showroom_visit", "a", u(3, 20, 6, 0), tier("A")),
		svc("p1", "purchase", "a", u(4, 1, 3, 0)),
		svc("sv2", "showroom_visit", "d", u(3, 10, 3, 0), tier("D")),
		svc("ref1", "referral", "v", u(3, 3, 4, 0), tier("VIP"), attrs("project", "bay")),
		svc("sv3", "showroom_visit", "c", u(4, 10, 3, 0), tier("C"), attrs("project", "bay")),
	}, u(5, 10, 0, 0))
	requireLines(t, []string{
		line("realestate-lead-callback", 0, 0, phone, "sales_advisor", u(3, 2, 2, 0), u(3, 2, 10, 0), "due"),
		// seed 002 line 57 "优质来电客户三日内再次电话邀约": due on day 2, the
		// deadline exactly 3 days after the call (not on day 4).
		line("realestate-good-lead", 0, 0, phone, "sales_advisor", u(3, 4, 2, 0), u(3, 5, 2, 0), "due"),
		line("realestate-good-lead", 1, 0, phone, "sales_advisor", u(3, 12, 2, 0), u(3, 14, 2, 0), "due"),
		line("realestate-good-lead", 1, 1, phone, "sales_advisor", u(3, 19, 2, 0), u(3, 21, 2, 0), "due"),
		// the lead came to the showroom: the weekly calls stop.
		line("realestate-good-lead", 1, 2, phone, "sales_advisor", u(3, 26, 2, 0), u(3, 28, 2, 0), "cancelled"),
		// 14:00 in Shanghai is outside both windows: moved to 15:30 (07:30 UTC).
		line("realestate-visitor-a", 0, 0, phone, "sales_advisor", u(3, 20, 7, 30), u(3, 20, 14, 0), "due"),
		// seed 002 line 61 "a、b类来访客户三日内,再次电话回访": deadline 3 × 24 h after the visit.
		line("realestate-visitor-a", 1, 0, phone, "sales_advisor", u(3, 22, 7, 30), u(3, 23, 6, 0), "due"),
		line("realestate-visitor-a", 2, 0, phone, "sales_advisor", u(3, 26, 7, 30), u(3, 27, 6, 0), "due"),
		line("realestate-visitor-a", 2, 1, phone, "sales_advisor", u(3, 29, 7, 30), u(3, 30, 6, 0), "due"),
		// bought on 1 April: the visitor calls stop, the buyer's start.
		line("realestate-visitor-a", 2, 2, phone, "sales_advisor", u(4, 1, 7, 30), u(4, 2, 6, 0), "cancelled"),
		line("realestate-buyer", 0, 0, phone, "sales_advisor", u(4, 1, 3, 0), u(4, 1, 11, 0), "due"),
		line("realestate-buyer", 1, 0, phone, "sales_advisor", u(4, 15, 3, 0), u(4, 18, 3, 0), "due"),
		line("realestate-buyer", 1, 1, phone, "sales_advisor", u(4, 29, 3, 0), u(5, 2, 3, 0), "due"),
		line("realestate-buyer", 1, 2, phone, "sales_advisor", u(5, 13, 3, 0), u(5, 16, 3, 0), "planned"),
		// the buyer's call at the construction milestone (midnight in Shanghai, moved to 10:00) and SMS on each holiday.
		line("realestate-buyer", 2, 0, phone, "sales_advisor", u(4, 20, 2, 0), u(4, 21, 16, 0), "due"),
		// the referred VIP: only at bay's launch, the offers and bay's show-flat
		// opening, told 3 days before each (第二条(二)1 "提前以电话或短信的方式向客户告知"):
		// 12 March 00:00 in Shanghai, called at 10:00 (02:00 UTC); timely until the
		// day before the milestone (2 days: 13 March 16:00 UTC = 14 March 00:00 in Shanghai).
		line("realestate-referred-vip", 0, 0, phone, "sales_advisor", u(3, 12, 2, 0), u(3, 13, 16, 0), "due"),
		line("realestate-referred-vip", 0, 1, phone, "sales_advisor", u(4, 15, 2, 0), u(4, 16, 16, 0), "due"),
		line("realestate-referred-vip", 0, 2, phone, "sales_advisor", u(5, 5, 2, 0), u(5, 6, 16, 0), "due"),
		// class D (第二条(一)5 "d类客户在重要节点及节日给予祝福,多以短信形势维护"): an SMS at
		// each milestone its service may see (no project: the offers and the
		// topping-out, not bay's or hill's launch), at 09:00 in Shanghai; its
		// holiday SMS comes from realestate-holidays.
		line("realestate-visitor-d", 0, 0, sms, "sales_advisor", u(4, 18, 1, 0), u(4, 18, 16, 0), "due"),
		line("realestate-visitor-d", 0, 1, sms, "sales_advisor", u(4, 20, 1, 0), u(4, 20, 16, 0), "due"),
		// 第四条1 "节假日必须回访客户,给客户发祝福短信": every customer (a, d and the VIP v)
		// one SMS on each holiday, once whatever the policies that enrolled them;
		// issue 16: at 09:00 in Shanghai (01:00 UTC), not at midnight.
		line("realestate-holidays", 0, 0, sms, "sales_advisor", u(4, 4, 1, 0), u(4, 4, 16, 0), "due"),
		line("realestate-holidays", 0, 1, sms, "sales_advisor", u(5, 1, 1, 0), u(5, 1, 16, 0), "due"),
		line("realestate-holidays", 0, 0, sms, "sales_advisor", u(4, 4, 1, 0), u(4, 4, 16, 0), "due"),
		line("realestate-holidays", 0, 1, sms, "sales_advisor", u(5, 1, 1, 0), u(5, 1, 16, 0), "due"),
		line("realestate-holidays", 0, 0, sms, "sales_advisor", u(4, 4, 1, 0), u(4, 4, 16, 0), "due"),
		line("realestate-holidays", 0, 1, sms, "sales_advisor", u(5, 1, 1, 0), u(5, 1, 16, 0), "due"),
		// "重点客户以电话形式表示祝福": the class A customer a is also called on each
		// holiday, in the first window (10:00 in Shanghai).
		line("realestate-holiday-call-key", 0, 0, phone, "sales_advisor", u(4, 4, 2, 0), u(4, 4, 16, 0), "due"),
		line("realestate-holiday-call-key", 0, 1, phone, "sales_advisor", u(5, 1, 2, 0), u(5, 1, 16, 0), "due"),
		// 第四条2 "重要项目节点回访客户,如开盘、sp活动、封顶、交房、样板间开放等": the class A
		// customer a gets an SMS at the first milestone it may see (no project: the
		// topping-out, 09:00 in Shanghai), once for its call and its visit; it
		// bought on 1 April, so the buyer's call at that milestone takes its place.
		line("realestate-milestones", 0, 0, sms, "sales_advisor", u(4, 20, 1, 0), u(4, 20, 16, 0), "cancelled"),
		// the class C visitor c of project bay (10 April): weekly calls (第二条(一)4),
		// the May holiday's SMS, and an SMS at each milestone after its visit it
		// may see: the topping-out (every project's) and bay's show-flat opening,
		// not the offers (no milestone of 第四条2).
		line("realestate-visitor-c", 0, 0, phone, "sales_advisor", u(4, 17, 3, 0), u(4, 19, 3, 0), "due"),
		line("realestate-visitor-c", 0, 1, phone, "sales_advisor", u(4, 24, 3, 0), u(4, 26, 3, 0), "due"),
		line("realestate-visitor-c", 0, 2, phone, "sales_advisor", u(5, 1, 3, 0), u(5, 3, 3, 0), "due"),
		line("realestate-visitor-c", 0, 3, phone, "sales_advisor", u(5, 8, 3, 0), u(5, 10, 3, 0), "due"),
		line("realestate-visitor-c", 0, 4, phone, "sales_advisor", u(5, 15, 3, 0), u(5, 17, 3, 0), "planned"),
		line("realestate-holidays", 0, 0, sms, "sales_advisor", u(5, 1, 1, 0), u(5, 1, 16, 0), "due"),
		line("realestate-milestones", 0, 0, sms, "sales_advisor", u(4, 20, 1, 0), u(4, 20, 16, 0), "due"),
		line("realestate-milestones", 0, 1, sms, "sales_advisor", u(5, 8, 1, 0), u(5, 8, 16, 0), "due"),
	}, out)
}

// only returns the named policies of a pack, the others switched off.
func only(ps []policy.Policy, names ...string) []policy.Policy {
	var off []string
	for _, p := range ps {
		if !slices.Contains(names, p.Name) {
			off = append(off, p.Name)
		}
	}
	return switched(switched(ps, true, names...), false, off...)
}

// Seed 000 (property) 1.6 "重点节日探望由公司经理组织进行,入伙回访、突发事件处理完毕后回访。":
// holiday visits by the company manager, on site, for every resident once;
// a call within a calendar month of moving in; a call within 3 days (exactly
// 72 h) after an incident is dealt with. The tenant has no quiet hours, so a
// holiday's visit is made at 09:00.
func TestPropertyProgramsGolden(t *testing.T) {
	d := func(m time.Month, dd, h int) time.Time { return time.Date(2026, m, dd, h, 0, 0, 0, time.UTC) }
	var rules contact.Rules
	rules.Holidays = []string{"2026-04-05", "2026-05-01"}
	ps := only(load(t, "property"), "property-holiday-visit", "property-move-in", "property-incident")
	out := engine.Sim{Policies: ps, Rules: rules}.Run([]engine.Event{
		svc("mi1", "move_in", "c1", d(3, 2, 10)),
		svc("in1", "incident_closed", "c2", d(3, 31, 10)),
		// c1 again: already enrolled in the holiday visits, not twice.
		svc("in2", "incident_closed", "c1", d(4, 20, 15)),
	}, d(5, 10, 0))
	requireLines(t, []string{
		// 入伙回访: within one calendar month, 2 March → 2 April.
		line("property-move-in", 0, 0, phone, "property_assistant", d(3, 2, 10), d(4, 2, 10), "due"),
		// 突发事件处理完毕后回访: within 3 days of the incident's end.
		line("property-incident", 0, 0, phone, "property_assistant", d(3, 31, 10), d(4, 3, 10), "due"),
		line("property-incident", 0, 0, phone, "property_assistant", d(4, 20, 15), d(4, 23, 15), "due"),
		// 重点节日探望由公司经理组织进行: c1 and c2 on each holiday, at 09:00, timely that day.
		line("property-holiday-visit", 0, 0, onsite, "company_manager", d(4, 5, 9), d(4, 6, 0), "due"),
		line("property-holiday-visit", 0, 1, onsite, "company_manager", d(5, 1, 9), d(5, 2, 0), "due"),
		line("property-holiday-visit", 0, 0, onsite, "company_manager", d(4, 5, 9), d(4, 6, 0), "due"),
		line("property-holiday-visit", 0, 1, onsite, "company_manager", d(5, 1, 9), d(5, 2, 0), "due"),
	}, out)
}

// Seed 000 (hospital) 六、回访时间 "1. 出院当天:……预约后续复查时间,并进行首次电话回访"
// and "4. 后续复查时:根据患者病情和需求,给予相应的指导和帮助": the discharge-day
// call books the check-up (its rule says so); each later check-up the
// hospital's system sends (checkup) gets a call within 2 days.
func TestHospitalCheckupGolden(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	checkup := time.Date(2026, 3, 16, 10, 0, 0, 0, time.UTC)
	ps := load(t, "hospital")
	for _, p := range ps {
		if p.Name == "hospital-discharge" {
			require.Contains(t, p.SourceRule, "book the check-up: 预约后续复查时间")
		}
	}
	out := engine.Sim{Policies: ps}.Run([]engine.Event{
		svc("d1", "discharge", "p1", t0),
		svc("k1", "checkup", "p1", checkup),
		svc("k2", "checkup", "p1", checkup.AddDate(0, 3, 0)),
	}, t0.AddDate(0, 7, 0))
	requireLines(t, []string{
		line("hospital-discharge", 0, 0, phone, "nurse", t0, t0.Add(12*time.Hour), "due"),
		line("hospital-discharge", 1, 0, phone, "nurse", t0.Add(day(7)), t0.Add(day(9)), "due"),
		line("hospital-discharge", 2, 0, onsite, "nurse", t0.AddDate(0, 1, 0), t0.AddDate(0, 1, 7), "due"),
		line("hospital-checkup", 0, 0, phone, "nurse", checkup, checkup.Add(day(2)), "due"),
		line("hospital-checkup", 0, 0, phone, "nurse", checkup.AddDate(0, 3, 0), checkup.AddDate(0, 3, 0).Add(day(2)), "due"),
	}, out)
}

// Seed 000 (cement logistics, 回访制度新版) "回访频次每月不少于3次,每次为前一天旳发货数量"
// and "上门回访旳频次每月不少于一次": at least 3 calls and one on-site check in
// every calendar month. Three call series 10 days apart and an on-site
// series, each every calendar month from the first delivery: each series
// has exactly one visit in every month (the same day, or the month's last
// day when it has none), so every month from the first has 3 calls and a
// check. Delivered on 10 January: calls on the 11th, 21st and 31st (28
// February, 30 April), on site on the 15th.
func TestCementLogisticsMonthlyGolden(t *testing.T) {
	d := func(m time.Month, dd int) time.Time { return time.Date(2026, m, dd, 8, 0, 0, 0, time.UTC) }
	ps := only(load(t, "cement"), "cement-logistics-monthly")
	out := engine.Sim{Policies: ps}.Run([]engine.Event{
		svc("dl1", "delivery", "k1", d(1, 10)),
		svc("dl2", "delivery", "k1", d(2, 3)), // already enrolled: not twice
	}, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	var want []string
	call := func(step, occ int, at time.Time, status string) {
		want = append(want, line("cement-logistics-monthly", step, occ, phone, "logistics", at, at.Add(day(2)), status))
	}
	for i, m := range []time.Month{1, 2, 3, 4} {
		call(0, i, d(m, 11), "due")
		call(1, i, d(m, 21), "due")
		want = append(want, line("cement-logistics-monthly", 3, i, onsite, "logistics_onsite", d(m, 15), d(m, 22), "due"))
	}
	for i, at := range []time.Time{d(1, 31), d(2, 28), d(3, 31), d(4, 30)} {
		call(2, i, at, "due")
	}
	call(0, 4, d(5, 11), "planned")
	call(1, 4, d(5, 21), "planned")
	call(2, 4, d(5, 31), "planned")
	want = append(want, line("cement-logistics-monthly", 3, 4, onsite, "logistics_onsite", d(5, 15), d(5, 22), "planned"))
	requireLines(t, want, out)

	calls, checks := map[time.Month]int{}, map[time.Month]int{}
	for _, o := range out {
		if o.Status == "due" && o.Channel == phone {
			calls[o.DueAt.Month()]++
		}
		if o.Status == "due" && o.Channel == onsite {
			checks[o.DueAt.Month()]++
		}
	}
	require.Equal(t, map[time.Month]int{1: 3, 2: 3, 3: 3, 4: 3}, calls, "每月不少于3次")
	require.Equal(t, map[time.Month]int{1: 1, 2: 1, 3: 1, 4: 1}, checks, "每月不少于一次")
}

// Seed 000 (auto) 主动预约顾客分类 "配件订货到货提醒 / 召回预约 / 服务节活动分流预约 /
// 主题促销活动提醒 / 顾客维系活动预约": parts arrived (an SMS at once, a call
// the next day, stopped when the customer comes in); a recall (SMS, then a
// call to book it); the DMS's campaigns (service type campaign, attribute
// campaign), an SMS a week before the customer's day (7 "提前一周内") and,
// for the service festival and loyalty events, a booking call 5 days before.
// Dates are made at 09:00 (no quiet hours), timely until their deadline.
func TestAutoProgramsGolden(t *testing.T) {
	d := func(m time.Month, dd, h int) time.Time { return time.Date(2026, m, dd, h, 0, 0, 0, time.UTC) }
	ps := only(load(t, "auto"), "auto-parts-arrived", "auto-recall-booking", "auto-service-festival", "auto-promotion", "auto-loyalty-event")
	out := engine.Sim{Policies: ps}.Run([]engine.Event{
		svc("pa1", "parts_arrived", "c1", d(3, 2, 10)),
		svc("pa2", "parts_arrived", "c2", d(3, 2, 10)),
		svc("rp2", "repair", "c2", d(3, 2, 15)), // c2 came in the same day: no call
		svc("rc3", "recall", "c3", d(3, 2, 10)),
		svc("sf1", "campaign", "c1", d(3, 1, 8), attrs("campaign", "service_festival", "event_date", "2026-03-28")),
		svc("pr2", "campaign", "c2", d(3, 1, 8), attrs("campaign", "promotion", "event_date", "2026-04-10")),
		svc("ly3", "campaign", "c3", d(3, 1, 8), attrs("campaign", "loyalty_event", "event_date", "2026-04-18")),
		svc("xx4", "campaign", "c4", d(3, 1, 8), attrs("campaign", "raffle", "event_date", "2026-04-18")), // no program
	}, d(5, 1, 0))
	requireLines(t, []string{
		line("auto-parts-arrived", 0, 0, sms, "crm", d(3, 2, 10), d(3, 3, 10), "due"),
		line("auto-parts-arrived", 1, 0, phone, "crm", d(3, 3, 10), d(3, 5, 10), "due"),
		line("auto-parts-arrived", 0, 0, sms, "crm", d(3, 2, 10), d(3, 3, 10), "due"),
		line("auto-parts-arrived", 1, 0, phone, "crm", d(3, 3, 10), d(3, 5, 10), "cancelled"),
		line("auto-recall-booking", 0, 0, sms, "crm", d(3, 2, 10), d(3, 3, 10), "due"),
		line("auto-recall-booking", 1, 0, phone, "crm", d(3, 3, 10), d(3, 10, 10), "due"),
		// 28 March − 7 d = 21 March, timely until 6 days later (the day before the festival).
		line("auto-service-festival", 0, 0, sms, "crm", d(3, 21, 9), d(3, 27, 0), "due"),
		line("auto-service-festival", 1, 0, phone, "crm", d(3, 23, 9), d(3, 26, 0), "due"),
		line("auto-promotion", 0, 0, sms, "crm", d(4, 3, 9), d(4, 9, 0), "due"),
		line("auto-loyalty-event", 0, 0, sms, "crm", d(4, 11, 9), d(4, 17, 0), "due"),
		line("auto-loyalty-event", 1, 0, phone, "crm", d(4, 13, 9), d(4, 16, 0), "due"),
	}, out)
}
