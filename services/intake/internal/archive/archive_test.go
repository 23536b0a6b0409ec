package archive

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/intake/internal/tier"
)

var (
	t1 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	t2 = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
)

func TestMerge(t *testing.T) {
	prefs := &Preferences{DislikesCalls: true}
	tests := []struct {
		name        string
		cur, in     Record
		want        Record
		wantChanged []string
	}{
		{"newer replaces what it fills",
			Record{Name: "王芳", Phone: "+861", Email: "a@x", SourceUpdatedAt: t1},
			Record{Phone: "+862", SourceUpdatedAt: t2},
			Record{Name: "王芳", Phone: "+862", Email: "a@x", SourceUpdatedAt: t2},
			[]string{"phone"}},
		{"older does not overwrite",
			Record{Name: "王芳", Phone: "+862", SourceUpdatedAt: t2},
			Record{Name: "王 芳", Phone: "+861", SourceUpdatedAt: t1},
			Record{Name: "王芳", Phone: "+862", SourceUpdatedAt: t2},
			nil},
		{"older fills blanks",
			Record{Phone: "+862", SourceUpdatedAt: t2},
			Record{Email: "a@x", Preferences: prefs, SourceUpdatedAt: t1},
			Record{Phone: "+862", Email: "a@x", Preferences: prefs, SourceUpdatedAt: t2},
			[]string{"email", "preferences"}},
		{"same data again changes nothing",
			Record{Name: "王芳", Phone: "+862", Owners: []string{"s1"}, SourceUpdatedAt: t2},
			Record{Name: "王芳", Phone: "+862", Owners: []string{"s1"}, SourceUpdatedAt: t2},
			Record{Name: "王芳", Phone: "+862", Owners: []string{"s1"}, SourceUpdatedAt: t2},
			nil},
		{"seed 002: owners are a union, archive first",
			Record{Owners: []string{"s1"}, SourceUpdatedAt: t2},
			Record{Owners: []string{"s2", "s1", ""}, SourceUpdatedAt: t1},
			Record{Owners: []string{"s1", "s2"}, SourceUpdatedAt: t2},
			[]string{"owner_ids"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cur := tc.cur
			changed := Merge(&cur, tc.in)
			require.Equal(t, tc.wantChanged, changed)
			require.Equal(t, tc.want, cur)
		})
	}
}

// Preferences compare by what they say; set preferences, even empty ones,
// differ from none.
func TestPreferencesEqual(t *testing.T) {
	p := &Preferences{OptedOut: []typesv1.Channel{typesv1.Channel_CHANNEL_SMS}, Windows: []contact.Window{{Start: 600, End: 690}}, TimeZone: "Asia/Shanghai"}
	require.True(t, p.Equal(p.Clone()))
	require.True(t, (*Preferences)(nil).Equal(nil))
	require.False(t, (&Preferences{}).Equal(nil))
	require.False(t, (*Preferences)(nil).Equal(&Preferences{}))
	require.True(t, (&Preferences{Windows: []contact.Window{}}).Equal(&Preferences{}), "no windows, however written")
	other := p.Clone()
	other.Windows[0].End = 700
	require.False(t, p.Equal(other))
	require.Equal(t, 690, p.Windows[0].End, "a clone shares nothing")
}

// The contract's preferences and customers convert both ways without loss.
func TestProtoRoundTrip(t *testing.T) {
	pp := &typesv1.ContactPreferences{
		OptedOut: []typesv1.Channel{typesv1.Channel_CHANNEL_SMS}, TimeZone: "Asia/Shanghai", Language: "zh-CN", DislikesCalls: true,
		Windows: []*typesv1.ContactWindow{{StartMinute: 600, EndMinute: 690}, {StartMinute: 930, EndMinute: 1020}},
	}
	p := PreferencesFromProto(pp)
	require.Equal(t, []contact.Window{{Start: 600, End: 690}, {Start: 930, End: 1020}}, p.Windows)
	require.True(t, proto.Equal(pp, p.Proto()))
	require.Nil(t, PreferencesFromProto(nil))
	require.Nil(t, (*Preferences)(nil).Proto())

	pc := &typesv1.Customer{ExternalId: "c-1", Name: "王芳", Phone: "+8613800138000", Kind: "fleet", ReferredBy: "c-0",
		OrgUnit: "sh", OwnerIds: []string{"s-1", "s-2"}, Preferences: pp, Tier: "A"}
	c := &Customer{ID: "id-1", ExternalID: "c-1", Record: FromProto(pc, t1), Tier: "key"}
	want := proto.CloneOf(pc)
	want.Id, want.Tier, want.UpstreamTier = "id-1", "key", "A"
	want.Name, want.Phone, want.NameMasked, want.PhoneMasked, want.HasPhone = "", "", "王*", "*******8000", true
	require.True(t, proto.Equal(want, c.Proto()), "masked, never in clear")
	require.Equal(t, "+8613800138000", FromProto(pc, t1).Phone, "what comes in is taken in clear")
	require.Equal(t, t1, c.SourceUpdatedAt)
	require.Equal(t, KindIndividual, (&Customer{}).Proto().Kind, "kind defaults to individual")
}

func TestSetPreferences(t *testing.T) {
	c := &Customer{}
	p := &Preferences{DislikesCalls: true}
	require.Equal(t, []string{"preferences"}, c.SetPreferences(p))
	require.Nil(t, c.SetPreferences(&Preferences{DislikesCalls: true}), "the same preferences again change nothing")
	p.DislikesCalls = false
	require.True(t, c.Preferences.DislikesCalls, "the customer keeps its own copy")
}

// seed 002: at least two distinct staff know each customer; the first is
// the primary owner.
func TestOwners(t *testing.T) {
	for _, tc := range []struct {
		owners []string
		want   []string
	}{
		{[]string{"s-1", "s-2"}, nil},
		{[]string{"s-9", "s-9"}, []string{"owner_ids"}},
		{[]string{"s-1"}, []string{"owner_ids"}},
		{nil, []string{"owner_ids"}},
		{[]string{"s-1", " "}, []string{"owner_ids[1]"}},
	} {
		var l invalid.List
		CheckOwners(&l, "owner_ids", tc.owners)
		var got []string
		if bad, ok := invalid.As(l.Err()); ok {
			for _, v := range bad.Violations {
				got = append(got, v.Field)
			}
		}
		require.Equal(t, tc.want, got, tc.owners)
	}
	c := &Customer{Record: Record{Owners: []string{"s-1", "s-2"}}}
	require.Equal(t, []string{"owner_ids"}, c.SetOwners([]string{"s-9", "s-1", "s-9"}))
	require.Equal(t, []string{"s-9", "s-1"}, c.Owners)
	require.Nil(t, c.SetOwners([]string{"s-9", "s-1"}))
}

// A change re-evaluates the tier; any change bumps the version once and is
// due to be announced; no change, nothing.
func TestSettle(t *testing.T) {
	rules, err := tier.Parse(tier.DefaultRules)
	require.NoError(t, err)
	c := &Customer{Version: 3}
	require.Nil(t, c.Settle(rules, nil, t2))
	require.EqualValues(t, 3, c.Version)

	c.Metrics = tier.Metrics{CarsYear: 2}
	require.Equal(t, []string{"name", "tier"}, c.Settle(rules, []string{"name"}, t2))
	require.Equal(t, "key", c.Tier)
	require.EqualValues(t, 4, c.Version)
	require.Equal(t, t2, c.UpdatedAt)

	c.Metrics = tier.Metrics{Kind: "fleet", SpendYearMinor: 600000}
	c.Kind = KindFleet
	require.Equal(t, []string{"tier"}, c.Settle(rules, nil, t2), "a fleet needs over 20,000")
	require.Equal(t, "", c.Tier)
	require.EqualValues(t, 5, c.Version)
}

// seed 002 (real estate): the sales centre grades its customers (a、b、c、d类,
// VIPs) and says so in customer.tier; the archive keeps the newest grade
// (merge rule) and the tier in effect is it, unless an override rule says
// otherwise; the default key rule does not replace a grade.
func TestSettleUpstreamTier(t *testing.T) {
	rules, err := tier.Parse(`[{"tier":"VIP","tenants":["estate"],"override":true,"any":[{"metric":"referrals","min":3}]},` +
		strings.TrimPrefix(tier.DefaultRules, "["))
	require.NoError(t, err)
	c := &Customer{TenantID: "estate"}
	changed := Merge(&c.Record, FromProto(&typesv1.Customer{Tier: "A"}, t1))
	require.Equal(t, []string{FieldUpstreamTier}, changed)
	require.Equal(t, []string{FieldUpstreamTier, FieldTier}, c.Settle(rules, changed, t1))
	require.Equal(t, "A", c.Tier)
	require.Equal(t, "A", c.Proto().GetUpstreamTier())

	require.Empty(t, Merge(&c.Record, FromProto(&typesv1.Customer{Tier: "C"}, t1.Add(-time.Hour))), "an older grade does not replace a newer one")
	require.Empty(t, Merge(&c.Record, FromProto(&typesv1.Customer{}, t2)), "an empty tier never erases")
	require.Equal(t, "A", c.UpstreamTier)

	c.Metrics = tier.Metrics{CarsYear: 2}
	require.Nil(t, c.Settle(rules, nil, t2), "the key rule derives, it does not replace a grade")
	require.Equal(t, "A", c.Tier)

	c.Metrics = tier.Metrics{Referrals: 3}
	require.Equal(t, []string{FieldTier}, c.Settle(rules, nil, t2), "an override rule replaces it")
	require.Equal(t, "VIP", c.Tier)
	require.Equal(t, "A", c.UpstreamTier, "the grade sent is kept beside it")

	other := &Customer{TenantID: "auto", Record: Record{UpstreamTier: "B"}, Metrics: tier.Metrics{Referrals: 3}}
	other.Settle(rules, nil, t2)
	require.Equal(t, "B", other.Tier, "another tenant's rule does not apply")
}

// seed 000: a customer that newly names a referrer re-evaluates the referrer.
func TestNewReferrer(t *testing.T) {
	c := &Customer{Record: Record{ReferredBy: "c-0"}}
	require.Equal(t, "c-0", c.NewReferrer([]string{"created", "phone", "referred_by"}))
	require.Equal(t, "", c.NewReferrer([]string{"phone"}))
	require.Equal(t, "", (&Customer{}).NewReferrer([]string{"referred_by"}))
}
