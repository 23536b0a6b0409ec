package satisfaction_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/analytics/internal/satisfaction"
)

// Seed 003's aspects as names: complaint handling, equipment, cleaning, staff attitude, overall impression, …
func TestValidAspect(t *testing.T) {
	for s, want := range map[string]bool{
		"overall": true, "staff_attitude": true, "fire_prevention2": true,
		"": false, "Overall": false, "staff-attitude": false, "2nd": false, "满意": false,
	} {
		require.Equal(t, want, satisfaction.ValidAspect(s), s)
	}
}
