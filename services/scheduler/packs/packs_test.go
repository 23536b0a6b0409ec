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
	out := engine.Sim{Policies: load(t, "property")}.Run(evs, t0.Add(day(90)))
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
	again := engine.Sim{Policies: load(t, "property")}.Run(evs, t0.Add(day(90)))
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
	out := engine.Sim{Policies: load(t, "cement")}.Run([]engine.Event{
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
	out = engine.Sim{Policies: load(t, "cement")}.Run([]engine.Event{svc("dl3", "delivery", "k2", d(12, 1))}, time.Date(2027, 1, 10, 0, 0, 0, 0, time.UTC))
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
		// issue 16: the holiday SMS at 09:00 in Shanghai (01:00 UTC), not at midnight.
		line("realestate-buyer", 3, 0, sms, "sales_advisor", u(4, 4, 1, 0), u(4, 4, 16, 0), "due"),
		line("realestate-buyer", 3, 1, sms, "sales_advisor", u(5, 1, 1, 0), u(5, 1, 16, 0), "due"),
		// the referred VIP: only at bay's launch, the offers and bay's show-flat opening, at 10:00 in Shanghai.
		line("realestate-referred-vip", 0, 0, phone, "sales_advisor", u(3, 15, 2, 0), u(3, 16, 16, 0), "due"),
		line("realestate-referred-vip", 0, 1, phone, "sales_advisor", u(4, 18, 2, 0), u(4, 19, 16, 0), "due"),
		line("realestate-referred-vip", 0, 2, phone, "sales_advisor", u(5, 8, 2, 0), u(5, 9, 16, 0), "due"),
		// class D: SMS on each holiday of the calendar (midnight in Shanghai), nothing else.
		line("realestate-visitor-d", 0, 0, sms, "sales_advisor", u(4, 4, 1, 0), u(4, 4, 16, 0), "due"),
		line("realestate-visitor-d", 0, 1, sms, "sales_advisor", u(5, 1, 1, 0), u(5, 1, 16, 0), "due"),
	}, out)
}
