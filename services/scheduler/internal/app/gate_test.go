package app

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The gate lets in as many as its limit, and another once one leaves.
func TestGate(t *testing.T) {
	var g gate
	require.True(t, g.enter(2))
	require.True(t, g.enter(2))
	require.False(t, g.enter(2), "a third is refused")
	g.leave()
	require.True(t, g.enter(2))
}
