package main

import (
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	envconfig "github.com/huifang/huifang/pkg/config"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
)

func TestParsePolicies(t *testing.T) {
	got, err := parsePolicies(" builtin-appliance-purchase=seed-001-appliance, p2 = seed-003-property ,")
	require.NoError(t, err)
	require.Equal(t, map[string]string{"builtin-appliance-purchase": "seed-001-appliance", "p2": "seed-003-property"}, got)
	for _, bad := range []string{"p", "=q", "p=Q Q"} {
		_, err := parsePolicies(bad)
		require.Error(t, err, bad)
	}
}

// The routing and the deadline that ship are the domain's, stated once:
// the configuration's tags do not restate them.
func TestDefaultComplaintRulesAreTheDomains(t *testing.T) {
	cfg := defaults()
	require.NoError(t, envconfig.Load(envconfig.Map(nil), &cfg))
	require.Equal(t, complaint.DefaultRulesSpec, cfg.ComplaintRules)
	require.Equal(t, complaint.DefaultDeadline, cfg.ComplaintDeadline)
	require.Equal(t, 48*time.Hour, cfg.ComplaintDeadline, "seed 003: 48 hours")
	require.Equal(t, time.Minute, cfg.EscalationInterval)
	for _, name := range []string{"ComplaintRules", "ComplaintDeadline"} {
		f, ok := reflect.TypeOf(config{}).FieldByName(name)
		require.True(t, ok)
		_, has := f.Tag.Lookup("default")
		require.False(t, has, "%s: the default comes from package complaint", name)
	}
	_, err := complaint.ParseRules(cfg.ComplaintRules, cfg.ComplaintDeadline)
	require.NoError(t, err)

	// The environment still decides.
	cfg = defaults()
	require.NoError(t, envconfig.Load(envconfig.Map(map[string]string{"COMPLAINT_RULES": "billing=finance", "COMPLAINT_DEADLINE": "12h"}), &cfg))
	require.Equal(t, "billing=finance", cfg.ComplaintRules)
	require.Equal(t, 12*time.Hour, cfg.ComplaintDeadline)
}
