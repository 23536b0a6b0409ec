package wire_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/services/dispatch/internal/wire"
)

// TestCustomerRoundTrip: the snapshot a task keeps and the API shows is the
// customer intake sent, field for field.
func TestCustomerRoundTrip(t *testing.T) {
	for _, c := range []*typesv1.Customer{
		{Id: "c-1", ExternalId: "crm-9", NameMasked: "王芳", PhoneMasked: "13800000000", HasPhone: true, EmailMasked: "wf@example.com", HasEmail: true, Tier: "key",
			OwnerIds: []string{"a-1", "a-2"}, OrgUnit: "north", Kind: "fleet", ReferredBy: "crm-1",
			Preferences: &typesv1.ContactPreferences{OptedOut: []typesv1.Channel{typesv1.Channel_CHANNEL_SMS},
				Windows: []*typesv1.ContactWindow{{StartMinute: 600, EndMinute: 690}}, TimeZone: "Asia/Shanghai", Language: "zh-CN", DislikesCalls: true}},
		{Id: "c-2", NameMasked: "无*"},
	} {
		require.True(t, proto.Equal(c, wire.CustomerProto(wire.Customer(c))), "%v", c)
	}
	// A clear contact from an older producer is not kept: only that there is one.
	kept := wire.CustomerProto(wire.Customer(&typesv1.Customer{Id: "c-3", Name: "王芳", Phone: "+8613800138000", Email: "wf@example.com"}))
	require.True(t, proto.Equal(&typesv1.Customer{Id: "c-3", HasPhone: true, HasEmail: true}, kept), "%v", kept)
	require.Nil(t, wire.CustomerProto(wire.Customer(nil)), "no customer stays none")
	require.True(t, wire.Customer(nil).IsZero())
}

func TestCalendar(t *testing.T) {
	require.Equal(t, contact.Calendar{}, wire.Calendar(nil), "a visit without a calendar: any time")
	got := wire.Calendar(&typesv1.ContactCalendar{Windows: []*typesv1.ContactWindow{{StartMinute: 600, EndMinute: 690}},
		QuietHours: &typesv1.ContactWindow{StartMinute: 1260, EndMinute: 480}, TimeZone: "Asia/Shanghai",
		Holidays: []string{"2025-10-01"}, AvoidHolidays: true})
	require.Equal(t, contact.Calendar{Windows: []contact.Window{{Start: 600, End: 690}}, Quiet: &contact.Window{Start: 1260, End: 480},
		TimeZone: "Asia/Shanghai", Holidays: []string{"2025-10-01"}, AvoidHolidays: true}, got)
}
