package policy

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/invalid"
)

var completed = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// Seed 001: a new purchase gets its first follow-up 1–3 days after purchase.
func TestBuiltinAppliancePurchase(t *testing.T) {
	p := Builtin()[0]
	require.NoError(t, Validate(p))
	svc := Service{Tenant: "acme", ID: "s-1", Type: "purchase", CompletedAt: completed}
	require.True(t, p.Matches(svc), "built-ins apply to every tenant")
	visits := plan(t, p, svc, NoHolidays{})
	require.Len(t, visits, 1)
	v := visits[0]
	require.True(t, v.Planned)
	require.Equal(t, completed.Add(24*time.Hour), v.DueAt, "due one day after purchase")
	require.Equal(t, completed.Add(72*time.Hour), v.Deadline, "timely until three days after purchase")
	require.Equal(t, int32(ChannelPhone), v.Channel)
	require.False(t, p.Matches(Service{Tenant: "acme", Type: "repair"}))
}

// Issue 16: the starter appliance-purchase applies to a tenant only until it
// configured purchases: a pack loaded (appliance's own purchase call, real
// estate's buyers, any other business's pack), or a policy of its own for
// purchases. Deactivated policies configure nothing; a starter the tenant
// switched on itself stays on; the confirmation of a resolved complaint is
// no starter.
func TestEffectiveStarter(t *testing.T) {
	starter, confirm := Builtin()[0], Builtin()[1]
	require.True(t, starter.Starter)
	require.False(t, confirm.Starter)
	own := func(name, pack string, active bool, types ...string) Policy {
		return Policy{ID: name, Tenant: "t", Name: name, Pack: pack, Active: active, Trigger: Trigger{ServiceTypes: types}}
	}
	tests := []struct {
		name   string
		tenant []Policy
		why    string
	}{
		{"nothing configured", nil, ""},
		{"a policy of its own for repairs", []Policy{own("instant", "", true, "repair")}, ""},
		{"the appliance pack", []Policy{own("appliance-purchase-followup", "appliance", true, "purchase")},
			"the tenant's policy appliance-purchase-followup is triggered by purchase"},
		{"the hospital pack", []Policy{own("hospital-discharge", "hospital", true, "discharge")},
			"the tenant loaded the hospital pack (policy hospital-discharge)"},
		{"a policy of its own for purchases", []Policy{own("mine", "", true, "purchase", "delivery")},
			"the tenant's policy mine is triggered by purchase"},
		{"a pack loaded off (to simulate)", []Policy{own("appliance-purchase-followup", "appliance", false, "purchase")}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Effective(append([]Policy{starter, confirm}, tc.tenant...))
			require.Equal(t, tc.why == "", got[0].Active)
			require.Equal(t, tc.why, got[0].SupersededBy)
			require.True(t, got[1].Active, "the confirmation applies to every tenant")
			require.Empty(t, got[1].SupersededBy)
		})
	}
	on := starter
	on.TenantOverride = true
	got := Effective([]Policy{on, own("appliance-purchase-followup", "appliance", true, "purchase")})
	require.True(t, got[0].Active, "switched on by the tenant itself: it wants both")
}

// Seed 000 (1.3, 1.9): a major complaint's follow-ups are made on site by
// the manager; a phone step becomes an on-site visit for one, the others
// keep their channel.
func TestMajorComplaintIsPlannedOnSite(t *testing.T) {
	confirm := Builtin()[1]
	for sev, want := range map[string]Channel{"": ChannelPhone, "general": ChannelPhone, "urgent": ChannelPhone, "major": ChannelOnsite} {
		vs := plan(t, confirm, Service{Tenant: "t", ID: "c-1", Type: TypeComplaintResolved, Severity: sev, CompletedAt: completed}, NoHolidays{})
		require.Len(t, vs, 1)
		require.Equal(t, int32(want), vs[0].Channel, "severity %q", sev)
		require.Equal(t, sev == "major", vs[0].Decisions[1].Detail == MajorOnSite, "severity %q: %v", sev, vs[0].Decisions)
	}
	sms := Policy{ID: "p", Name: "sms", Trigger: Trigger{ServiceTypes: []string{"complaint_closed"}},
		Steps: []Step{{Channel: ChannelSMS, SampleRate: 1, Every: Duration(24 * time.Hour)}}}
	vs := plan(t, sms, Service{ID: "s", Type: "complaint_closed", Severity: "major", CompletedAt: completed}, NoHolidays{})
	require.Equal(t, int32(ChannelSMS), vs[0].Channel, "only a phone step becomes a visit")

	weekly := Policy{ID: "p", Name: "weekly", Trigger: Trigger{ServiceTypes: []string{"complaint_closed"}},
		Steps: []Step{{Channel: ChannelPhone, SampleRate: 1, Every: Duration(7 * 24 * time.Hour), MaxOccurrences: 3}}}
	svc := Service{ID: "s", Type: "complaint_closed", Severity: "major", CompletedAt: completed}
	first := plan(t, weekly, svc, NoHolidays{})[0]
	next, ok := weekly.Next(first, svc, NoHolidays{}, false)
	require.True(t, ok)
	require.Equal(t, int32(ChannelOnsite), next.Channel, "every occurrence of a series")
}

func TestMatches(t *testing.T) {
	p := Policy{Tenant: "t1", Active: true, Trigger: Trigger{ServiceTypes: []string{"repair"}, OrgUnits: []string{"north"}}}
	tests := []struct {
		name string
		svc  Service
		want bool
	}{
		{"match", Service{Tenant: "t1", Type: "repair", OrgUnit: "north"}, true},
		{"other tenant", Service{Tenant: "t2", Type: "repair", OrgUnit: "north"}, false},
		{"other type", Service{Tenant: "t1", Type: "purchase", OrgUnit: "north"}, false},
		{"other org unit", Service{Tenant: "t1", Type: "repair", OrgUnit: "south"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, p.Matches(tc.svc))
		})
	}
	p.Active = false
	require.False(t, p.Matches(Service{Tenant: "t1", Type: "repair", OrgUnit: "north"}))
}

func TestZeroWindowMeansThe48HourStandard(t *testing.T) {
	p := Policy{ID: "p", Name: "instant", Active: true, Steps: []Step{{Channel: ChannelPhone, SampleRate: 1}}}
	v := plan(t, p, Service{ID: "s", CompletedAt: completed}, NoHolidays{})[0]
	require.Equal(t, completed, v.DueAt)
	require.Equal(t, completed.Add(48*time.Hour), v.Deadline, "seed 003: follow-up within 48 hours")
}

func TestValidateNamesEveryField(t *testing.T) {
	rate := 1.5
	p := Policy{Steps: []Step{{Offset: Duration(-time.Hour), Window: Duration(-time.Minute), SampleRate: rate}}}
	err := Validate(p)
	bad, ok := invalid.As(err)
	require.True(t, ok)
	var fields []string
	for _, v := range bad.Violations {
		fields = append(fields, v.Field)
	}
	require.ElementsMatch(t, []string{
		"policy.name", "policy.trigger.service_types",
		"policy.steps[0].offset", "policy.steps[0].window", "policy.steps[0].channel", "policy.steps[0].sample_rate",
	}, fields)
}

// A tenant revises its own policy (version n+1, same id and state); a built-in is not revised.
func TestRevise(t *testing.T) {
	cur := Policy{ID: "p", Tenant: "t", Name: "p", Version: 3, Active: false}
	next, err := cur.Revise(Policy{Name: "renamed", Active: true, Builtin: true})
	require.NoError(t, err)
	require.Equal(t, Policy{ID: "p", Tenant: "t", Name: "renamed", Version: 4, Active: false}, next)
	_, err = Builtin()[0].Revise(Policy{Name: "x"})
	require.ErrorIs(t, err, ErrBuiltin)
}

// A tenant switches its own policy itself, a built-in by an override for
// itself only; "*" switches nothing; a policy of tenant "*" that is not a
// built-in is not the tenant's.
func TestSwitchedByOverride(t *testing.T) {
	own := Policy{ID: "p", Tenant: "t"}
	override, err := own.SwitchedByOverride("t")
	require.NoError(t, err)
	require.False(t, override)
	override, err = Builtin()[0].SwitchedByOverride("t")
	require.NoError(t, err)
	require.True(t, override)
	_, err = Builtin()[0].SwitchedByOverride(AllTenants)
	require.ErrorIs(t, err, ErrBuiltin)
	require.ErrorIs(t, SwitchableBy(AllTenants), ErrBuiltin)
	_, err = Policy{ID: "q", Tenant: AllTenants}.SwitchedByOverride("t")
	require.ErrorIs(t, err, ErrForeign)
}

// Once per customer: a customer with a pending visit of the policy is not enrolled again.
func TestEnrolls(t *testing.T) {
	p := Policy{ID: "p", Trigger: Trigger{OncePerCustomer: true}}
	s := Service{CustomerID: "c"}
	require.True(t, p.Enrolls(s, nil))
	require.True(t, p.Enrolls(s, []string{"other"}))
	require.False(t, p.Enrolls(s, []string{"other", "p"}))
	require.True(t, p.Enrolls(Service{}, []string{"p"}), "a service without a customer is always enrolled")
	p.Trigger.OncePerCustomer = false
	require.True(t, p.Enrolls(s, []string{"p"}))
}

// Stop "the customer came in": a later service of one of the stop's types by a customer.
func TestStopCameIn(t *testing.T) {
	st := Stop{ServiceTypes: []string{"maintenance", "repair"}}
	later := Service{Type: "repair", CustomerID: "c", CompletedAt: completed.Add(time.Hour)}
	require.True(t, st.CameIn(completed, later))
	require.False(t, st.CameIn(completed.Add(2*time.Hour), later), "not a service before the followed one")
	require.False(t, st.CameIn(completed, Service{Type: "purchase", CustomerID: "c", CompletedAt: later.CompletedAt}))
	require.False(t, st.CameIn(completed, Service{Type: "repair", CompletedAt: later.CompletedAt}), "no customer")
}

// Channel names are the contract's enum names, short names are read too.
func TestChannelNames(t *testing.T) {
	require.Equal(t, "CHANNEL_PHONE", ChannelName(ChannelPhone))
	require.Equal(t, "CHANNEL_WEB", ChannelName(ChannelWeb))
	require.Equal(t, "9", ChannelName(9))
	for in, want := range map[string]Channel{`"CHANNEL_SMS"`: ChannelSMS, `"sms"`: ChannelSMS, `"Onsite"`: ChannelOnsite, `4`: ChannelEmail, `"CHANNEL_UNSPECIFIED"`: ChannelUnspecified} {
		var c Channel
		require.NoError(t, json.Unmarshal([]byte(in), &c), in)
		require.Equal(t, want, c, in)
	}
	var c Channel
	require.Error(t, json.Unmarshal([]byte(`"fax"`), &c))
	b, err := json.Marshal(Channel(ChannelPhone))
	require.NoError(t, err)
	require.Equal(t, `"CHANNEL_PHONE"`, string(b))
}
