package config

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type sample struct {
	URL     string        `env:"DATABASE_URL,url" default:"postgres://u:pw@h/db"`
	Token   string        `env:"TOKEN,secret"`
	Port    int           `env:"PORT" default:"7001"`
	Every   time.Duration `env:"EVERY" default:"250ms"`
	Verbose bool          `env:"VERBOSE"`
	Plain   string
}

func TestLoadDefaultsAndOverrides(t *testing.T) {
	var c sample
	require.NoError(t, Load(Map(map[string]string{"PORT": "7100", "VERBOSE": "true", "TOKEN": "s3"}), &c))
	require.Equal(t, 7100, c.Port)
	require.Equal(t, 250*time.Millisecond, c.Every)
	require.True(t, c.Verbose)
	require.Equal(t, "postgres://u:pw@h/db", c.URL)
}

func TestLoadKeepsPresetValueOverDefault(t *testing.T) {
	c := sample{Port: 7003}
	require.NoError(t, Load(Map(nil), &c))
	require.Equal(t, 7003, c.Port)
}

func TestLoadNamesTheBadVariable(t *testing.T) {
	var c sample
	err := Load(Map(map[string]string{"EVERY": "soon"}), &c)
	require.ErrorContains(t, err, "EVERY")
}

func TestEnvPrefixWins(t *testing.T) {
	t.Setenv("GRPC_ADDR", ":1")
	t.Setenv("INTAKE_GRPC_ADDR", ":2")
	v, ok := Env("intake")("GRPC_ADDR")
	require.True(t, ok)
	require.Equal(t, ":2", v)
}

func TestAttrsHideSecrets(t *testing.T) {
	c := sample{URL: "postgres://u:pw@h/db", Token: "s3"}
	got := map[string]string{}
	for _, a := range Attrs(&c) {
		attr := a.(slog.Attr)
		got[attr.Key] = attr.Value.String()
	}
	require.Equal(t, "postgres://u:***@h/db", got["DATABASE_URL"])
	require.Equal(t, "***", got["TOKEN"])
	require.Equal(t, "0", got["PORT"])
}
