package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWebhookAddr(t *testing.T) {
	tests := []struct{ configured, http, want string }{
		{"", ":8001", ":8101"},
		{"", "127.0.0.1:41234", "127.0.0.1:41334"},
		{"", "127.0.0.1:0", "127.0.0.1:0"},
		{":9000", ":8001", ":9000"},
		{"off", ":8001", ""},
	}
	for _, tc := range tests {
		got, err := webhookAddr(tc.configured, tc.http)
		require.NoError(t, err)
		require.Equal(t, tc.want, got, tc)
	}
	_, err := webhookAddr("", "nonsense")
	require.Error(t, err)
}
