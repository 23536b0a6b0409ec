package app

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// A service collects garbage at DefaultGOGC unless GOGC says otherwise.
func TestGCTargetDefaultsUnlessGOGCIsSet(t *testing.T) {
	old := debug.SetGCPercent(123)
	t.Cleanup(func() { debug.SetGCPercent(old) })

	require.False(t, gcTarget(func(string) (string, bool) { return "50", true }))
	require.Equal(t, 123, debug.SetGCPercent(123), "GOGC set: the target is left as the runtime read it")

	require.True(t, gcTarget(func(string) (string, bool) { return "", false }))
	require.Equal(t, DefaultGOGC, debug.SetGCPercent(123))
}
