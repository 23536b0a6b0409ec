package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWebhookAddr(t *testing.T) {
	tests := []struct{ configured, http, want string }{
		{"", ":8001", ":8001"},
		{"", "127.0.0.1:0", "127.0.0.1:0"},
		{":8001", ":8001", ":8001"},
		{":8101", ":8001", ":8101"},
		{"off", ":8001", ""},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, webhookAddr(tc.configured, tc.http), tc)
	}
}
