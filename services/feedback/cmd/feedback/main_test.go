package main

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"

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

func TestDefaultComplaintRulesAreTheDocumentedOnes(t *testing.T) {
	f, ok := reflect.TypeOf(config{}).FieldByName("ComplaintRules")
	require.True(t, ok)
	require.Equal(t, complaint.DefaultRulesSpec, f.Tag.Get("default"))
}
