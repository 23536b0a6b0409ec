package contact

import (
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	calendar "github.com/huifang/huifang/pkg/contact"
)

// A customer holds a snapshot when the snapshot would change nothing but
// when it changed: the same version, preferences and tier, and no channel
// it does not know opted out of.
func TestCustomerHolds(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	p := Prefs{OptedOut: []int32{4}, Windows: []calendar.Window{{Start: 600, End: 690}}, TimeZone: "Asia/Shanghai", DislikesCalls: true}
	var c Customer
	require.True(t, c.Update(0, p, "gold", at))
	require.True(t, c.Holds(0, p, "gold"))
	// What Holds compares: every field of Prefs (a new one must be compared too).
	require.Equal(t, 4, reflect.TypeOf(Prefs{}).NumField())

	for name, q := range map[string]Prefs{
		"another opt-out":   {OptedOut: []int32{4, 1}, Windows: p.Windows, TimeZone: p.TimeZone, DislikesCalls: true},
		"another window":    {OptedOut: p.OptedOut, Windows: []calendar.Window{{Start: 600, End: 700}}, TimeZone: p.TimeZone, DislikesCalls: true},
		"another time zone": {OptedOut: p.OptedOut, Windows: p.Windows, TimeZone: "UTC", DislikesCalls: true},
		"calls welcome":     {OptedOut: p.OptedOut, Windows: p.Windows, TimeZone: p.TimeZone},
	} {
		require.False(t, c.Holds(0, q, "gold"), name)
	}
	require.False(t, c.Holds(0, p, "silver"), "another tier")
	require.False(t, c.Holds(1, p, "gold"), "another version")

	// An opt-out kept (ContactOptedOut) but not in the snapshot's preferences:
	// the snapshot without it holds only if its preferences are the same.
	c.OptOut(2, at)
	require.True(t, c.Holds(0, p, "gold"))
	require.False(t, c.Holds(0, Prefs{OptedOut: []int32{4, 3}, Windows: p.Windows, TimeZone: p.TimeZone, DislikesCalls: true}, "gold"))

	var none Customer
	require.True(t, none.Holds(0, Prefs{}, ""), "nil and empty lists are the same")
	require.True(t, (&Customer{Prefs: Prefs{OptedOut: []int32{}}}).Holds(0, Prefs{}, ""))
}
