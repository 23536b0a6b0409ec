package chaos

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/stream"
)

// Injected is a fault as it happened.
type Injected struct {
	Fault
	// Start is when it began; End when the target was back (started and
	// ready, resumed) or, for an instant fault, when it was done.
	Start, End time.Time
	// Note says what it did (sessions ended, the poison's id, ...).
	Note string
	Err  string
	// IngressFloor is, for a single server's wipe, the last ingress stream
	// sequence intake had acknowledged just before the kill (0: unknown).
	// Events JetStream acknowledged after it, before the kill, were only in
	// the store the wipe took away.
	IngressFloor uint64
}

func (in Injected) String() string {
	s := in.Fault.String()
	if !in.Start.IsZero() {
		s += fmt.Sprintf(" [%s–%s]", in.Start.Format("15:04:05.000"), in.End.Format("15:04:05.000"))
	}
	if in.Note != "" {
		s += " " + in.Note
	}
	if in.Err != "" {
		s += " ERROR: " + in.Err
	}
	return s
}

// Poisoned is a poison message the suite published.
type Poisoned struct {
	EventID string
	VisitID string
	Payload []byte
	At      time.Time
}

// injector runs a schedule against a System.
type injector struct {
	sys     *System
	seed    int64
	poisons []Poisoned
}

// run injects the faults in order, each at its time from start (or at once
// after the one before, when that one ran late), and returns what happened.
func (in *injector) run(ctx context.Context, start time.Time, faults []Fault) []Injected {
	var out []Injected
	for _, f := range faults {
		if d := time.Until(start.Add(f.At)); d > 0 {
			sleep(ctx, d)
		}
		if ctx.Err() != nil {
			break
		}
		got := Injected{Fault: f}
		if f.Kind == WipeNATS {
			got.IngressFloor = in.ingressFloor(ctx)
		}
		got.Start = time.Now()
		note, err := in.inject(ctx, f)
		got.End, got.Note = time.Now(), note
		if err != nil {
			got.Err = err.Error()
		}
		in.sys.log.Info("fault injected", "fault", got.String())
		out = append(out, got)
	}
	return out
}

// ingressDurable is intake's durable consumer of the ingress stream.
const ingressDurable = "intake-ingress"

// ingressFloor reads how far intake has acknowledged the ingress stream.
func (in *injector) ingressFloor(ctx context.Context) uint64 {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := in.sys.JS.Consumer(cctx, stream.IngressStream, ingressDurable)
	if err != nil {
		return 0
	}
	info, err := c.Info(cctx)
	if err != nil {
		return 0
	}
	return info.AckFloor.Stream
}

func (in *injector) inject(ctx context.Context, f Fault) (string, error) {
	s := in.sys
	switch f.Kind {
	case KillService:
		pid := s.Stack.Pid(f.Target)
		s.Stack.Kill(f.Target)
		sleep(ctx, f.For)
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		return fmt.Sprintf("pid %d killed", pid), s.Stack.StartService(rctx, f.Target)
	case KillNATS, WipeNATS:
		s.NATS.Kill()
		sleep(ctx, f.For)
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		note := "store kept"
		if f.Kind == WipeNATS {
			note = "store wiped: streams, consumers and the duplicate window are gone"
		}
		return note, s.NATS.Restart(rctx, f.Kind == WipeNATS)
	case KillNATSNode, WipeNATSNode:
		i, _ := strconv.Atoi(f.Target)
		node := s.Cluster.Nodes[i]
		node.Kill()
		sleep(ctx, f.For)
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := node.Restart(rctx, f.Kind == WipeNATSNode); err != nil {
			return "", err
		}
		note := "node " + node.URL
		if f.Kind == WipeNATSNode {
			note += ", store wiped: it catches up from its peers"
		}
		return note, s.waitStreams(rctx)
	case CrashPG:
		if err := s.PG.Crash(ctx); err != nil {
			return "", err
		}
		sleep(ctx, f.For)
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		return "", s.PG.Resume(rctx)
	case TerminatePG:
		n, err := s.PG.Terminate(ctx, s.DBName)
		return fmt.Sprintf("%d sessions terminated", n), err
	case Pause:
		target := f.Target
		if target == "analytics" {
			target = in.analyticsLeader()
		}
		if target == MidSend {
			return in.pauseMidSend(ctx, f.For)
		}
		if err := s.Stack.Pause(target); err != nil {
			return "", err
		}
		sleep(ctx, f.For)
		return "paused " + target, s.Stack.Resume(target)
	case Poison:
		p, err := in.poison(ctx)
		if err != nil {
			return "", err
		}
		return "event " + p.EventID, nil
	}
	return "", fmt.Errorf("unknown fault %q", f.Kind)
}

// analyticsLeader is the analytics instance that logged "leading" last.
func (in *injector) analyticsLeader() string {
	best, bestLine := "analytics", ""
	for _, inst := range in.sys.InstancesOf("analytics") {
		lines := in.sys.LogLines(inst, `"msg":"leading"`)
		if len(lines) > 0 && lines[len(lines)-1] > bestLine {
			best, bestLine = inst, lines[len(lines)-1]
		}
	}
	return best
}

// poison publishes a VisitDue no consumer can store: its visit id holds a
// NUL byte, valid protobuf and UTF-8 that Postgres refuses in text (SQLSTATE
// 22021) every time. Each consumer must retry it MaxDeliver times, then
// dead-letter it, and go on with the rest meanwhile.
func (in *injector) poison(ctx context.Context) (Poisoned, error) {
	n := len(in.poisons) + 1
	now := time.Now()
	ev := &eventsv1.VisitDue{
		EventId:   fmt.Sprintf("poison-%d-%d", in.seed, n),
		TenantId:  "default",
		VisitId:   fmt.Sprintf("poison\x00%d-%d", in.seed, n),
		ServiceId: fmt.Sprintf("poison-service-%d", n),
		PolicyId:  "chaos-poison",
		Channel:   typesv1.Channel_CHANNEL_PHONE,
		DueAt:     timestamppb.New(now),
		Customer:  &typesv1.Customer{Id: "poison-customer", ExternalId: "poison-customer", Name: "毒\x00药", Phone: "+8613800000000"},
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		return Poisoned{}, err
	}
	msg := &nats.Msg{Subject: stream.SubjectVisitDue, Data: data, Header: nats.Header{}}
	msg.Header.Set(stream.HeaderContentType, stream.ContentTypeProtobuf)
	msg.Header.Set(jetstream.MsgIDHeader, ev.GetEventId())
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := in.sys.JS.PublishMsg(pctx, msg); err != nil {
		return Poisoned{}, fmt.Errorf("publish poison: %w", err)
	}
	p := Poisoned{EventID: ev.GetEventId(), VisitID: ev.GetVisitId(), Payload: data, At: now}
	in.poisons = append(in.poisons, p)
	return p, nil
}

// MidSend is the Pause target "the dispatch replica that is sending an SMS".
const MidSend = "dispatch-mid-send"

// pauseMidSend catches a dispatch replica in the middle of a send and
// pauses it past its send lease: it locks the local sender's table, so the
// next send blocks in its INSERT (its claim and lease are committed), finds
// which replica's session waits, pauses that replica, lets the INSERT go
// through (the "provider" has the message) and waits for. Another replica
// then finds the lease run out and sends again: the provider must drop the
// second send by its idempotency key, and the paused replica, resumed,
// must record nothing over the one that took over.
func (in *injector) pauseMidSend(ctx context.Context, d time.Duration) (string, error) {
	s := in.sys
	tx, err := s.DB.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `LOCK TABLE dispatch.local_sent_messages IN EXCLUSIVE MODE`); err != nil {
		return "", err
	}
	var port int
	deadline := time.Now().Add(15 * time.Second)
	for port == 0 && time.Now().Before(deadline) {
		err := s.DB.QueryRow(ctx, `SELECT client_port FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO local_sent_messages%' LIMIT 1`).Scan(&port)
		if err != nil {
			sleep(ctx, 100*time.Millisecond)
		}
	}
	if port == 0 {
		return "no send in flight within 15 s: nothing paused", nil
	}
	target := ""
	for _, inst := range s.InstancesOf("dispatch") {
		if ownsPort(s.Stack.Pid(inst), port) {
			target = inst
		}
	}
	if target == "" {
		return "", fmt.Errorf("no dispatch replica owns the blocked session's port %d", port)
	}
	if err := s.Stack.Pause(target); err != nil {
		return "", err
	}
	if err := tx.Commit(ctx); err != nil {
		_ = s.Stack.Resume(target)
		return "", err
	}
	sleep(ctx, d)
	return "paused " + target + " in the middle of a send", s.Stack.Resume(target)
}

// ownsPort says whether process pid has a TCP socket on local port port
// (Linux: /proc/net/tcp{,6} and the process's file descriptors).
func ownsPort(pid, port int) bool {
	if pid == 0 {
		return false
	}
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 10 {
				continue
			}
			local := fields[1]
			i := strings.LastIndexByte(local, ':')
			p, err := strconv.ParseInt(local[i+1:], 16, 32)
			if err == nil && int(p) == port {
				inodes[fields[9]] = true
			}
		}
	}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, fd := range fds {
		link, err := os.Readlink(dir + "/" + fd.Name())
		if err == nil && strings.HasPrefix(link, "socket:[") && inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
			return true
		}
	}
	return false
}
