package stack

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/auth"
)

// TestNATSProcessKillAndRestart: a killed huifang-nats comes back on the
// same URL with its store (the stream and its message are there); restarted
// on an emptied store, the stream is gone.
func TestNATSProcessKillAndRestart(t *testing.T) {
	root, err := Root(".")
	require.NoError(t, err)
	bin := filepath.Join(t.TempDir(), "huifang-nats")
	cmd := exec.Command("go", "build", "-o", bin, "./scripts/cmd/huifang-nats")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	p, err := RunNATS(ctx, bin, filepath.Join(t.TempDir(), "store"))
	require.NoError(t, err)
	t.Cleanup(p.Stop)
	url := p.URL

	count := func() (uint64, error) {
		nc, err := nats.Connect(p.URL, nats.Timeout(time.Second))
		if err != nil {
			return 0, err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return 0, err
		}
		str, err := js.Stream(ctx, "T")
		if err != nil {
			return 0, err
		}
		return str.CachedInfo().State.Msgs, nil
	}
	nc, err := nats.Connect(p.URL)
	require.NoError(t, err)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage})
	require.NoError(t, err)
	_, err = js.Publish(ctx, "t.x", []byte("kept"))
	require.NoError(t, err)
	nc.Close()

	p.Kill()
	require.False(t, p.Running())
	_, err = count()
	require.Error(t, err, "nothing answers while it is down")
	require.NoError(t, p.Restart(ctx, false))
	require.Equal(t, url, p.URL, "the same port")
	require.Eventually(t, func() bool { n, err := count(); return err == nil && n == 1 }, 30*time.Second, 100*time.Millisecond,
		"the stream and its message survived the kill")

	p.Kill()
	require.NoError(t, p.Restart(ctx, true))
	_, err = count()
	require.ErrorIs(t, err, jetstream.ErrStreamNotFound, "an emptied store has no stream")
}

// TestPauseAndResume: a paused service is stopped (state T) until resumed;
// Stop ends a paused service too.
func TestPauseAndResume(t *testing.T) {
	bins := t.TempDir()
	for _, s := range Services() {
		require.NoError(t, os.WriteFile(filepath.Join(bins, s), []byte("#!/bin/sh\nexec sleep 600\n"), 0o755))
	}
	st, err := New(Config{BinDir: bins, DatabaseURL: "postgres://x", NATSURL: "nats://x", Auth: auth.Config{Issuer: "http://127.0.0.1:1"}, LogDir: t.TempDir(), StopGrace: 5 * time.Second})
	require.NoError(t, err)
	require.NoError(t, st.spawn("dispatch"))
	t.Cleanup(func() { st.Kill("dispatch") })
	pid := st.Pid("dispatch")
	require.NotZero(t, pid)
	state := func() string {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return ""
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		return f[0]
	}
	require.NoError(t, st.Pause("dispatch"))
	require.Eventually(t, func() bool { return state() == "T" }, 5*time.Second, 20*time.Millisecond, "stopped by SIGSTOP")
	require.NoError(t, st.Resume("dispatch"))
	require.Eventually(t, func() bool { return state() == "S" }, 5*time.Second, 20*time.Millisecond, "running again after SIGCONT")

	require.NoError(t, st.Pause("dispatch"))
	err = st.Stop(context.Background(), "dispatch")
	require.Error(t, err, "sleep dies of the SIGTERM: not a clean exit")
	require.NotContains(t, err.Error(), "killed after SIGTERM", "a paused process still sees its SIGTERM")
	require.False(t, st.Running("dispatch"))
	require.Zero(t, st.Pid("dispatch"))
	require.Error(t, st.Pause("dispatch"), "nothing to pause")
}

// TestLockMachine: a second holder of the same lock waits for the first.
func TestLockMachine(t *testing.T) {
	name := "test-" + strconv.Itoa(os.Getpid())
	t.Cleanup(func() { _ = os.Remove(filepath.Join(os.TempDir(), "huifang-"+name+".lock")) })
	release, err := LockMachine(name)
	require.NoError(t, err)
	got := make(chan func(), 1)
	go func() {
		r, err := LockMachine(name)
		if err == nil {
			got <- r
		}
	}()
	select {
	case <-got:
		t.Fatal("the lock was taken twice")
	case <-time.After(200 * time.Millisecond):
	}
	release()
	select {
	case r := <-got:
		r()
	case <-time.After(10 * time.Second):
		t.Fatal("the second holder never got the lock")
	}
}
