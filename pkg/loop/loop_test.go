package loop

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log sink safe for the loop's goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func logger() (*slog.Logger, *syncBuffer) {
	var b syncBuffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}

// waitFor polls cond with a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func start(t *testing.T, l *Loop) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v, want nil on stop", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not stop when its context ended")
		}
	}
}

// A backlog drains in back-to-back rounds: with an interval of an hour, the
// full rounds cannot have waited for it.
func TestFullRoundsDrainAtOnce(t *testing.T) {
	log, _ := logger()
	var mu sync.Mutex
	backlog, rounds := 10, 0
	var handled []int
	l := &Loop{Name: "drain", Every: time.Hour, Batch: 3, Log: log,
		Round: func(context.Context) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			rounds++
			n := min(3, backlog)
			backlog -= n
			return n, nil
		},
		Done: func(n int) { mu.Lock(); handled = append(handled, n); mu.Unlock() },
	}
	stop := start(t, l)
	waitFor(t, "the backlog to drain", func() bool { mu.Lock(); defer mu.Unlock(); return rounds >= 4 })
	stop()
	mu.Lock()
	defer mu.Unlock()
	if rounds != 4 || backlog != 0 {
		t.Fatalf("rounds = %d, backlog = %d; want 4 rounds (3+3+3+1) and the next waiting an hour", rounds, backlog)
	}
	if want := []int{3, 3, 3, 1}; len(handled) != 4 || handled[3] != 1 {
		t.Fatalf("Done saw %v, want %v", handled, want)
	}
}

// Wake starts a round before the interval is up.
func TestWakeStartsARound(t *testing.T) {
	log, _ := logger()
	sig := NewSignal()
	var mu sync.Mutex
	rounds := 0
	l := &Loop{Name: "wake", Every: time.Hour, Wake: sig, Log: log, Round: func(context.Context) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		rounds++
		return 0, nil
	}}
	stop := start(t, l)
	defer stop()
	waitFor(t, "the first round", func() bool { mu.Lock(); defer mu.Unlock(); return rounds == 1 })
	sig.Notify()
	sig.Notify() // coalesced with the first
	waitFor(t, "the woken round", func() bool { mu.Lock(); defer mu.Unlock(); return rounds >= 2 })
}

// Failures back off, are logged when they start and when they end (not at
// every attempt), and a panic is one of them.
func TestFailuresBackOffAndLogStateChanges(t *testing.T) {
	log, buf := logger()
	var mu sync.Mutex
	calls := 0
	l := &Loop{Name: "flaky", Every: time.Millisecond, MaxBackoff: 4 * time.Millisecond, Log: log,
		Round: func(context.Context) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			switch {
			case calls == 3:
				panic("boom")
			case calls <= 6:
				return 0, errors.New("database away")
			}
			return 0, nil
		}}
	stop := start(t, l)
	waitFor(t, "recovery", func() bool { return strings.Contains(buf.String(), "recovered") })
	stop()
	out := buf.String()
	if n := strings.Count(out, "background loop failing"); n != 1 {
		t.Errorf("the start of the failure is logged %d times, want once:\n%s", n, out)
	}
	if !strings.Contains(out, "panic: boom") {
		t.Errorf("the panic is not reported:\n%s", out)
	}
	if !strings.Contains(out, "failures=6") {
		t.Errorf("the recovery does not count the failed rounds:\n%s", out)
	}
	if n := strings.Count(out, "database away"); n > 2 {
		t.Errorf("the same error is logged %d times, want it at the start and when it changes back:\n%s", n, out)
	}
}

func TestBackoff(t *testing.T) {
	cases := []struct {
		failures int
		want     time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {6, 30 * time.Second}, {60, 30 * time.Second}}
	for _, c := range cases {
		if got := backoff(time.Second, 30*time.Second, c.failures); got != c.want {
			t.Errorf("backoff after %d failures = %s, want %s", c.failures, got, c.want)
		}
	}
}

// A round in flight when the context ends finishes, and Run returns nil.
func TestStopsOnContext(t *testing.T) {
	log, _ := logger()
	entered := make(chan struct{})
	release := make(chan struct{})
	finished := make(chan struct{})
	var once sync.Once
	l := &Loop{Name: "slow", Every: time.Millisecond, Log: log, Round: func(ctx context.Context) (int, error) {
		once.Do(func() {
			close(entered)
			<-release
			close(finished)
		})
		return 0, nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	<-entered
	cancel()
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	select {
	case <-finished:
	default:
		t.Fatal("the round in flight did not finish")
	}
}
