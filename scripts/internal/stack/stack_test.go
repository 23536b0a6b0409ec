package stack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/pgtest"
)

func TestDefaultPorts(t *testing.T) {
	tests := []struct {
		service string
		offset  int
		want    Ports
	}{
		{"intake", 0, Ports{GRPC: 7001, HTTP: 8001}},
		{"dispatch", 0, Ports{GRPC: 7003, HTTP: 8003}},
		{"analytics", 100, Ports{GRPC: 7105, HTTP: 8105}},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			require.Equal(t, tt.want, DefaultPorts(tt.service, tt.offset))
		})
	}
}

func TestFreePortsAreDistinct(t *testing.T) {
	ports, err := FreePorts()
	require.NoError(t, err)
	seen := map[int]bool{}
	for _, s := range Services() {
		p := ports[s]
		for _, n := range []int{p.GRPC, p.HTTP} {
			require.NotZero(t, n)
			require.False(t, seen[n], "port %d handed out twice", n)
			seen[n] = true
		}
	}
}

func TestPrefixWriter(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"whole lines", []string{"a\nb\n"}, "x | a\nx | b\n"},
		{"line split across writes", []string{"he", "llo\nwor", "ld\n"}, "x | hello\nx | world\n"},
		{"partial line waits for its end", []string{"done\npart"}, "x | done\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			w := &prefixWriter{prefix: "x | ", w: &out}
			for _, s := range tt.writes {
				n, err := w.Write([]byte(s))
				require.NoError(t, err)
				require.Equal(t, len(s), n)
			}
			require.Equal(t, tt.want, out.String())
		})
	}
}

func TestNewNeedsTheBinaries(t *testing.T) {
	_, err := New(Config{BinDir: t.TempDir(), DatabaseURL: "postgres://x", NATSURL: "nats://x", Auth: auth.Config{Issuer: "http://127.0.0.1:1"}})
	require.ErrorContains(t, err, "binary of intake")
	_, err = New(Config{BinDir: t.TempDir()})
	require.ErrorContains(t, err, "required")
}

func TestBaseEnvDropsWhatTheStackSets(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://elsewhere")
	t.Setenv("SCHEDULER_GRPC_ADDR", ":9999")
	t.Setenv("INTAKE_OUTBOX_RELAY", "false")
	env := strings.Join(baseEnv(), "\n")
	require.NotContains(t, env, "DATABASE_URL=postgres://elsewhere")
	require.NotContains(t, env, "SCHEDULER_GRPC_ADDR=")
	require.Contains(t, env, "INTAKE_OUTBOX_RELAY=false", "other variables pass through")
}

func TestRootFindsGoWork(t *testing.T) {
	root, err := Root(".")
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(root, "go.work"))
	require.NoError(t, err)
	_, err = Root(t.TempDir())
	require.Error(t, err)
}

func TestCreateDatabaseIsIdempotent(t *testing.T) {
	ctx := t.Context()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "huifang_stack_" + hex.EncodeToString(b)
	admin := pgtest.AdminURL()
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			return
		}
		defer conn.Close(context.Background())
		_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})

	url, err := CreateDatabase(ctx, admin, name)
	require.NoError(t, err)
	again, err := CreateDatabase(ctx, admin, name)
	require.NoError(t, err, "an existing database is kept")
	require.Equal(t, url, again)

	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var current string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_database()").Scan(&current))
	require.Equal(t, name, current)

	_, err = CreateDatabase(ctx, admin, "Robert'); DROP TABLE x;--")
	require.ErrorContains(t, err, "database name")
}

func TestStartNATSSyncsEveryWrite(t *testing.T) {
	dir := t.TempDir()
	ns, err := StartNATS(dir, server.RANDOM_PORT)
	require.NoError(t, err)
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	cfg := ns.JetStreamConfig()
	require.NotNil(t, cfg)
	require.True(t, cfg.SyncAlways, "sync_interval: always")
	require.Equal(t, filepath.Join(dir, "jetstream"), cfg.StoreDir)

	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage})
	require.NoError(t, err)
	ack, err := js.Publish(t.Context(), "t.x", []byte("hi"))
	require.NoError(t, err)
	require.EqualValues(t, 1, ack.Sequence)
}

func TestInstancesAndReplicaPorts(t *testing.T) {
	st, err := New(Config{BinDir: fakeBins(t), DatabaseURL: "postgres://x", NATSURL: "nats://x", Auth: auth.Config{Issuer: "http://127.0.0.1:1"},
		Replicas: map[string]int{"scheduler": 2, "dispatch": 3}})
	require.NoError(t, err)
	require.Equal(t, []string{"intake", "scheduler", "scheduler-2", "dispatch", "dispatch-2", "dispatch-3", "feedback", "analytics"}, st.Instances())
	tests := []struct {
		instance string
		service  string
		replica  int
		ports    Ports
	}{
		{"scheduler", "scheduler", 1, Ports{GRPC: 7002, HTTP: 8002}},
		{"scheduler-2", "scheduler", 2, Ports{GRPC: 7102, HTTP: 8102}},
		{"dispatch-3", "dispatch", 3, Ports{GRPC: 7203, HTTP: 8203}},
	}
	for _, tt := range tests {
		t.Run(tt.instance, func(t *testing.T) {
			svc, k := ServiceOf(tt.instance)
			require.Equal(t, tt.service, svc)
			require.Equal(t, tt.replica, k)
			require.Equal(t, tt.ports, st.Ports(tt.instance))
		})
	}
	svc, k := ServiceOf("huifang-nats")
	require.Equal(t, "huifang-nats", svc, "a name that is no service's replica is itself")
	require.Equal(t, 1, k)

	_, err = New(Config{BinDir: fakeBins(t), DatabaseURL: "postgres://x", NATSURL: "nats://x", Auth: auth.Config{Issuer: "http://127.0.0.1:1"}, Replicas: map[string]int{"billing": 2}})
	require.ErrorContains(t, err, "billing")
}

// fakeBins is a folder with an empty file for each service's binary.
func fakeBins(t *testing.T) string {
	dir := t.TempDir()
	for _, s := range Services() {
		require.NoError(t, os.WriteFile(filepath.Join(dir, s), nil, 0o755))
	}
	return dir
}
