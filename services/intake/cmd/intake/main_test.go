package main

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/intake/internal/privacy"
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

// Outside DEV_MODE intake refuses to start without keys of its own: unset,
// or the committed development keys; in DEV_MODE it fills in the
// development keys for what is unset.
func TestKeysRefusedOutsideDevMode(t *testing.T) {
	const ring, hash = "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "b3RoZXItaGFzaC1rZXktb3RoZXItaGFzaC1rZXk="
	refused := []struct{ name, ring, hash, says string }{
		{"both unset", "", "", "ENCRYPTION_KEYS is unset; HASH_KEY is unset"},
		{"ring unset", "", hash, "ENCRYPTION_KEYS is unset"},
		{"hash key unset", ring, "", "HASH_KEY is unset"},
		{"development ring", privacy.DevKeys, hash, "committed development key"},
		{"development key under another id", "prod:ZGV2LWtleS1kby1ub3QtdXNlLWluLXByb2R1Y3Rpb24=", hash, "committed development key"},
		{"development hash key", ring, privacy.DevHashKey, "committed development key"},
		{"both development keys", privacy.DevKeys, privacy.DevHashKey, "committed development key"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := keys(config{EncryptionKeys: tc.ring, HashKey: tc.hash})
			require.ErrorIs(t, err, ErrKeys)
			require.ErrorContains(t, err, tc.says)
			require.ErrorContains(t, err, "openssl rand -base64 32")
			require.ErrorContains(t, err, "ENCRYPTION_KEYS=<id>:<base64 key>")
			require.ErrorContains(t, err, "docs/configuration.md")
		})
	}

	r, h, err := keys(config{EncryptionKeys: ring, HashKey: hash})
	require.NoError(t, err)
	require.Equal(t, []string{ring, hash}, []string{r, h})
	r, h, err = keys(config{EncryptionKeys: ring + "," + privacy.DevKeys, HashKey: hash})
	require.NoError(t, err, "the development key may stay behind a real one while moving off it")
	require.Equal(t, ring+","+privacy.DevKeys, r)
	require.Equal(t, hash, h)

	dev := config{}
	dev.DevMode = true
	r, h, err = keys(dev)
	require.NoError(t, err)
	require.Equal(t, []string{privacy.DevKeys, privacy.DevHashKey}, []string{r, h})
	dev.EncryptionKeys = ring
	r, h, err = keys(dev)
	require.NoError(t, err)
	require.Equal(t, []string{ring, privacy.DevHashKey}, []string{r, h}, "what is set is kept")
}

// run refuses to start without keys outside DEV_MODE, before it connects
// to anything.
func TestRunRefusesWithoutKeys(t *testing.T) {
	t.Setenv("AUTH_ISSUER", "https://issuer.example.com")
	t.Setenv("DEV_MODE", "false")
	t.Setenv("ENCRYPTION_KEYS", "")
	t.Setenv("HASH_KEY", "")
	t.Setenv("INTAKE_ENCRYPTION_KEYS", "")
	t.Setenv("INTAKE_HASH_KEY", "")
	err := run(context.Background(), slog.New(slog.DiscardHandler))
	require.ErrorIs(t, err, ErrKeys)
}
