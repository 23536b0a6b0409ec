package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/natstest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/scripts/internal/load"
	"github.com/huifang/huifang/scripts/internal/stack"
)

func TestFlags(t *testing.T) {
	cfg, err := parseFlags(nil, io.Discard)
	require.NoError(t, err)
	require.Equal(t, defaultEvents, cfg.events, "neither -n nor -d: the default count")
	require.Equal(t, 100.0, cfg.rate)
	require.Equal(t, builtinServiceTypes(), cfg.types)
	require.Equal(t, 0.05, cfg.duplicates)
	require.Equal(t, 0.01, cfg.malformed)

	cfg, err = parseFlags([]string{"-d", "30s", "-rate", "0", "-types", " repair, repair ,purchase", "-tenants", "3"}, io.Discard)
	require.NoError(t, err)
	require.Zero(t, cfg.events, "-d alone: no count limit")
	require.Equal(t, []string{"repair", "repair", "purchase"}, cfg.types)
	require.Equal(t, []string{"default", "t2", "t3"}, tenantNames(cfg.tenants))

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-rate", "-5"}, "-rate -5: must be 0"},
		{[]string{"-n", "-1"}, "-n -1"},
		{[]string{"-d", "-1s"}, "-d -1s"},
		{[]string{"-tenants", "0"}, "-tenants 0: must be 1–100"},
		{[]string{"-customers", "20000"}, "-customers 20000: must be 1–10000"},
		{[]string{"-duplicates", "1.5"}, "-duplicates 1.5: must be a share between 0 and 1"},
		{[]string{"-malformed", "-0.1"}, "-malformed -0.1"},
		{[]string{"-duplicates", "0.6", "-malformed", "0.6"}, "together they must not exceed 1"},
		{[]string{"-types", "repair,teleportation"}, `"teleportation" is not a built-in service type`},
		{[]string{"-types", " , "}, "name at least one service type"},
		{[]string{"-max-pending", "0"}, "-max-pending 0"},
		{[]string{"-ack-timeout", "0s"}, "-ack-timeout 0s: must be positive"},
		{[]string{"-wait", "-1s"}, "-wait -1s"},
		{[]string{"-nats", ""}, "-nats: give the NATS server's URL"},
		{[]string{"-source-system", " "}, "-source-system"},
		{[]string{"-rate", "fast"}, `invalid value "fast" for flag -rate`},
		{[]string{"-bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"-n", "10", "extra"}, `unexpected argument "extra"`},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := parseFlags(tt.args, io.Discard)
			require.ErrorContains(t, err, tt.want)
			require.ErrorAs(t, err, new(usageError), "a bad command line exits with status 2")
		})
	}
	_, err = parseFlags([]string{"-h"}, io.Discard)
	require.ErrorIs(t, err, flag.ErrHelp)
}

// refusal is the rule intake's validation (services/intake/internal/ingest:
// Decode, Normalize, Validate) refuses payload for, naming the field; ""
// when intake takes it. The scripts module cannot import intake's internal
// package, so this follows its rules that generated events can break.
func refusal(payload []byte, now time.Time) string {
	ev := &eventsv1.ServiceCompleted{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(payload, ev); err != nil {
		return "payload"
	}
	switch c := ev.GetCustomer(); {
	case strings.TrimSpace(ev.GetSourceSystem()) == "":
		return "source_system"
	case strings.TrimSpace(ev.GetSourceEventId()) == "":
		return "source_event_id"
	case !slices.Contains(builtinServiceTypes(), strings.TrimSpace(ev.GetServiceType())):
		return "service_type"
	case ev.GetCompletedAt() == nil || ev.GetCompletedAt().AsTime().After(now.Add(time.Hour)):
		return "completed_at"
	case c == nil:
		return "customer"
	case strings.TrimSpace(c.GetExternalId()) == "":
		return "customer.external_id"
	case !regexp.MustCompile(`^\+?[0-9][0-9 -]{4,19}$`).MatchString(c.GetPhone()):
		return "customer.phone"
	case ev.GetAmountMinor() < 0:
		return "amount_minor"
	}
	return ""
}

// TestTrafficMix checks the generated traffic over 10,000 events of a fixed
// seed: the shares of resends and malformed events, the tenants, service
// types and repeat customers; resends repeat an earlier event's source ids;
// malformed events break a rule intake refuses them for, valid ones none;
// every name and phone is plainly made up.
func TestTrafficMix(t *testing.T) {
	cfg, err := parseFlags([]string{"-n", "10000", "-tenants", "3", "-customers", "200", "-seed", "20261206"}, io.Discard)
	require.NoError(t, err)
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	events := load.Plan(loadConfig(cfg, "test", now))
	require.Len(t, events, 10000)

	kinds := map[load.Kind]int{}
	tenants := map[string]int{}
	types := map[string]int{}
	perCustomer := map[string]int{}
	firstOf := map[string]int{}
	name := regexp.MustCompile(`^测试客户\d{4}$`)
	phone := regexp.MustCompile(`^\+861390000\d{4}$`)
	for _, e := range events {
		kinds[e.Kind]++
		var v struct {
			TenantID      string `json:"tenant_id"`
			SourceSystem  string `json:"source_system"`
			SourceEventID string `json:"source_event_id"`
			Customer      struct {
				Name  string `json:"name"`
				Phone string `json:"phone"`
			} `json:"customer"`
		}
		switch e.Kind {
		case load.Valid:
			require.Empty(t, refusal(e.Payload, now), "intake takes a valid event: %s", e.Describe())
			require.NoError(t, json.Unmarshal(e.Payload, &v))
			require.Equal(t, "erp-loadgen", v.SourceSystem)
			require.Regexp(t, name, v.Customer.Name, "an obviously made-up name")
			require.Regexp(t, phone, v.Customer.Phone, "an obviously made-up phone")
			_, seen := firstOf[e.Key()]
			require.False(t, seen, "a valid event's source ids are new: %s", e.Describe())
			firstOf[e.Key()] = e.Seq
			tenants[e.Tenant]++
			types[e.ServiceType]++
			perCustomer[e.Tenant+"/"+e.CustomerID]++
		case load.Resend:
			of, seen := firstOf[e.Key()]
			require.True(t, seen, "a resend repeats an earlier event: %s", e.Describe())
			require.Equal(t, of, e.Of)
			require.Less(t, of, e.Seq)
			require.NoError(t, json.Unmarshal(e.Payload, &v))
			require.Equal(t, []string{e.Tenant, e.SourceSystem, e.SourceEventID}, []string{v.TenantID, v.SourceSystem, v.SourceEventID},
				"the resend carries the same source ids")
			require.Empty(t, refusal(e.Payload, now))
		case load.Malformed:
			require.Equal(t, e.Field, refusal(e.Payload, now), "intake refuses a malformed event for its field: %s", e.Describe())
		default:
			t.Fatalf("unexpected kind %s", e.Kind)
		}
	}
	require.InDelta(t, 0.05, float64(kinds[load.Resend])/10000, 0.01, "resends: %d", kinds[load.Resend])
	require.InDelta(t, 0.01, float64(kinds[load.Malformed])/10000, 0.004, "malformed: %d", kinds[load.Malformed])
	valid := kinds[load.Valid]
	require.ElementsMatch(t, []string{"default", "t2", "t3"}, mapsKeys(tenants))
	for ten, n := range tenants {
		require.InDelta(t, 1.0/3, float64(n)/float64(valid), 0.03, "tenant %s: %d of %d", ten, n, valid)
	}
	require.ElementsMatch(t, builtinServiceTypes(), mapsKeys(types))
	for typ, n := range types {
		require.InDelta(t, 1.0/float64(len(builtinServiceTypes())), float64(n)/float64(valid), 0.02, "service type %s: %d of %d", typ, n, valid)
	}
	repeat := 0
	for _, n := range perCustomer {
		if n > 1 {
			repeat++
		}
	}
	require.Greater(t, repeat, 400, "customers come back: %d of %d have more than one service", repeat, len(perCustomer))
	require.LessOrEqual(t, len(perCustomer), 3*200, "the pool is -customers per tenant")
}

func mapsKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestServiceTypesMatchIntake keeps builtinServiceTypes equal to intake's
// ingest.ServiceTypes (an internal package of another module).
func TestServiceTypesMatchIntake(t *testing.T) {
	root, err := stack.Root(".")
	require.NoError(t, err)
	src, err := os.ReadFile(filepath.Join(root, "services", "intake", "internal", "ingest", "ingest.go"))
	require.NoError(t, err)
	body := regexp.MustCompile(`(?s)func ServiceTypes\(\) \[\]string \{\s*return \[\]string\{(.*?)\}`).FindSubmatch(src)
	require.NotNil(t, body, "ingest.ServiceTypes not found")
	var intake []string
	for _, m := range regexp.MustCompile(`"([a-z0-9_]+)"`).FindAllSubmatch(body[1], -1) {
		intake = append(intake, string(m[1]))
	}
	require.Equal(t, intake, builtinServiceTypes())
}

func TestPercentiles(t *testing.T) {
	require.Equal(t, Percentiles{}, percentilesOf(nil))
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	require.Equal(t, Percentiles{Count: 100, P50: 50, P90: 90, P99: 99, Max: 100}, percentilesOf(d))
	require.Equal(t, 100*time.Millisecond, d[0], "the input is left as it was")
	require.Equal(t, Percentiles{Count: 1, P50: 1.5, P90: 1.5, P99: 1.5, Max: 1.5}, percentilesOf([]time.Duration{1500 * time.Microsecond}))
	// Nearest rank: of 10 values, p99 is the largest and p90 the 9th.
	d = nil
	for i := 1; i <= 10; i++ {
		d = append(d, time.Duration(i)*time.Second)
	}
	require.Equal(t, Percentiles{Count: 10, P50: 5000, P90: 9000, P99: 10000, Max: 10000}, percentilesOf(d))
	require.Equal(t, "0.4ms", ms(0.4))
	require.Equal(t, "15ms", ms(15.2))
	require.Equal(t, "1.23s", ms(1234))
	require.Equal(t, "12.3s", ms(12345))
}

// protoMsg is an event as the services publish it: protobuf, with its content type.
func protoMsg(t *testing.T, m proto.Message) (nats.Header, []byte) {
	t.Helper()
	b, err := proto.Marshal(m)
	require.NoError(t, err)
	h := nats.Header{}
	h.Set(stream.HeaderContentType, stream.ContentTypeProtobuf)
	return h, b
}

// TestTrackerMatchesEvents follows two events through the stages with
// fixed clocks: the latencies are measured from the first publish of an
// event's source ids, a resend and a second ServiceCompleted or VisitDue
// count no further, other traffic is ignored, and the run settles only
// once every due visit fired and every fired visit has its task.
func TestTrackerMatchesEvents(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tr := newTracker(t0)
	g := load.NewGenerator(load.Config{Seed: 1, Events: 10, ServiceTypes: []string{"repair"}, Now: t0, RunID: "t"})
	repair, purchase := g.Next(), g.Next()
	purchase.ServiceType = "purchase"
	resend := repair
	resend.Kind, resend.Seq, resend.Of = load.Resend, 2, repair.Seq
	bad := load.Event{Seq: 3, Kind: load.Malformed, Tenant: "default", SourceSystem: "erp-chaos", SourceEventID: "bad-t-000003", Field: "service_type"}

	msgs := map[int]*nats.Msg{}
	for i, e := range []load.Event{repair, purchase, resend, bad} {
		msgs[i] = &nats.Msg{}
		tr.sending(e, msgs[i], at(i*100))
	}
	tr.ack(msgs[0], at(5))
	tr.ack(msgs[1], at(110))
	tr.ack(msgs[2], at(207))
	tr.ack(msgs[3], at(309))
	tr.ack(msgs[3], at(400)) // an answer for a message no longer pending: ignored
	tr.publishEnded(at(300))
	require.False(t, tr.settled(at(10_000), 0, true), "no ServiceCompleted yet")

	key := func(e load.Event) (string, string, string) { return e.Tenant, e.SourceSystem, e.SourceEventID }
	svc := func(e load.Event, id string) *eventsv1.ServiceCompleted {
		ten, sys, sid := key(e)
		if ten == "default" {
			ten = "" // intake's events name the tenant; a blank one is the default
		}
		return &eventsv1.ServiceCompleted{TenantId: ten, SourceSystem: sys, SourceEventId: sid, ServiceId: id}
	}
	send := func(subject string, m proto.Message, when int) {
		h, b := protoMsg(t, m)
		tr.event(subject, h, b, at(when))
	}
	send(stream.SubjectServiceCompleted, svc(repair, "s-1"), 1000)
	send(stream.SubjectServiceCompleted, svc(repair, "s-1"), 1500) // re-emitted
	send(stream.SubjectServiceCompleted, &eventsv1.ServiceCompleted{TenantId: "default", SourceSystem: "erp-demo", SourceEventId: "x", ServiceId: "s-x"}, 1600)
	send(stream.SubjectVisitPlanned, &eventsv1.VisitPlanned{TenantId: "default", ServiceId: "s-x", VisitId: "v-x", DueAt: timestamppb.New(t0)}, 1600)
	// The purchase's ServiceCompleted comes in JSON: read too.
	jb, err := protojson.Marshal(svc(purchase, "s-2"))
	require.NoError(t, err)
	h := nats.Header{}
	h.Set(stream.HeaderContentType, stream.ContentTypeJSON)
	tr.event(stream.SubjectServiceCompleted, h, jb, at(1700))
	tr.event(stream.SubjectServiceCompleted, nats.Header{}, []byte("not protobuf \xff\xff"), at(1700))

	send(stream.SubjectVisitPlanned, &eventsv1.VisitPlanned{TenantId: "default", ServiceId: "s-1", VisitId: "v-1", DueAt: timestamppb.New(at(1000))}, 2000)
	send(stream.SubjectVisitPlanned, &eventsv1.VisitPlanned{TenantId: "default", ServiceId: "s-1", VisitId: "v-1b", DueAt: timestamppb.New(at(90_000))}, 2010)
	send(stream.SubjectVisitPlanned, &eventsv1.VisitPlanned{TenantId: "default", ServiceId: "s-2", VisitId: "v-2", DueAt: timestamppb.New(at(86_400_000))}, 2100)
	require.False(t, tr.settled(at(10_000), 0, true), "v-1 is due and has not fired")
	send(stream.SubjectVisitDue, &eventsv1.VisitDue{TenantId: "default", ServiceId: "s-1", VisitId: "v-1"}, 3000)
	send(stream.SubjectVisitDue, &eventsv1.VisitDue{TenantId: "default", ServiceId: "s-1", VisitId: "v-1"}, 3500) // redelivered
	send(stream.SubjectVisitDue, &eventsv1.VisitDue{TenantId: "default", ServiceId: "s-x", VisitId: "v-x"}, 3600)
	require.False(t, tr.settled(at(10_000), 0, true), "v-1 has no task and the malformed event no dead letter")
	require.False(t, tr.settled(at(10_000), 0, false), "the malformed event has no dead letter")

	tenants, visits := tr.awaitingTasks(10)
	require.Equal(t, []string{"default"}, tenants)
	require.Equal(t, []string{"v-1"}, visits)
	tr.task("t2", "v-1", at(3100), at(4000)) // another tenant's visit of that id
	tr.task("default", "v-1", at(3100), at(4000))
	tr.task("default", "v-1", at(3200), at(4100))
	tr.event(stream.DeadLetterSubject("intake"), nats.Header{stream.HeaderField: {"service_type"}}, nil, at(4200))
	require.False(t, tr.settled(at(5000), 2*time.Second, true), "something moved within the quiet time")
	require.True(t, tr.settled(at(6200), 2*time.Second, true))
	require.False(t, tr.settled(at(90_000), 0, true), "v-1b fell due and has not fired")

	s := tr.summary(at(10_000), "settled", true)
	require.Equal(t, 4, s.Published)
	require.Equal(t, 4, s.Acked)
	require.Equal(t, map[string]int{"valid": 2, "resend": 1, "malformed": 1}, s.Kinds)
	require.Equal(t, map[string]int{"service_type": 1}, s.MalformedFields)
	require.Equal(t, Percentiles{Count: 4, P50: 7, P90: 10, P99: 10, Max: 10}, s.Latency[stageAck])
	require.Equal(t, Percentiles{Count: 2, P50: 1000, P90: 1600, P99: 1600, Max: 1600}, s.Latency[stageService])
	require.Equal(t, Percentiles{Count: 2, P50: 2000, P90: 2000, P99: 2000, Max: 2000}, s.Latency[stagePlanned])
	require.Equal(t, Percentiles{Count: 1, P50: 3000, P90: 3000, P99: 3000, Max: 3000}, s.Latency[stageDue])
	require.Equal(t, Percentiles{Count: 1, P50: 3100, P90: 3100, P99: 3100, Max: 3100}, s.Latency[stageTask])
	require.Equal(t, &Counts{Valid: 1, Services: 1, Planned: 1, Due: 1, Tasks: 1}, s.ByType["repair"])
	require.Equal(t, &Counts{Valid: 1, Services: 1, Planned: 1}, s.ByType["purchase"])
	require.Equal(t, &Counts{Valid: 2, Services: 2, Planned: 2, Due: 1, Tasks: 1}, s.ByTenant["default"])
	require.Equal(t, 1, s.ServicesTwice)
	require.Zero(t, s.ServicesMissing)
	require.Equal(t, 1, s.Undecodable)
	require.Equal(t, 1, s.DeadLetters)
	require.Zero(t, s.VisitsDueNotFired, "v-1b falls due after the summary's time")
	require.Zero(t, s.FiredWithoutTask)
	require.Equal(t, 1, tr.summary(at(100_000), "timeout", true).VisitsDueNotFired)

	_, noTasks := tr.summary(at(10_000), "settled", false).Latency[stageTask]
	require.False(t, noTasks, "without -database-url the task stage is not measured")

	// A publish never answered counts as failed once the run gives up on it.
	lost := &nats.Msg{}
	tr.sending(g.Next(), lost, at(11_000))
	tr.abandon(errors.New("no answer"))
	tr.ack(lost, at(12_000))
	s = tr.summary(at(13_000), "settled", true)
	require.Equal(t, 5, s.Published)
	require.Equal(t, 4, s.Acked)
	require.Equal(t, 1, s.Failed)
	require.Equal(t, map[string]int{"no answer": 1}, s.Errors)
}

// fakePipeline stands in for intake and the scheduler on an in-process
// NATS server: it refuses what intake's rules refuse (a dead letter naming
// the field), drops resends, publishes a ServiceCompleted for each new
// service and, for a repair, a VisitPlanned and a VisitDue at once.
func fakePipeline(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	cons, err := js.OrderedConsumer(t.Context(), stream.IngressStream, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	var mu sync.Mutex
	seen := map[string]bool{}
	n := 0
	publish := func(subject string, h nats.Header, data []byte) {
		if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: subject, Header: h, Data: data}); err != nil {
			t.Errorf("fake pipeline: publish %s: %v", subject, err)
		}
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if field := refusal(m.Data(), time.Now()); field != "" {
			publish(stream.DeadLetterSubject("intake"), nats.Header{stream.HeaderField: {field}}, m.Data())
			return
		}
		ev := &eventsv1.ServiceCompleted{}
		if err := protojson.Unmarshal(m.Data(), ev); err != nil {
			t.Errorf("fake pipeline: %v", err)
			return
		}
		key := ev.GetTenantId() + "/" + ev.GetSourceSystem() + "/" + ev.GetSourceEventId()
		if seen[key] {
			return
		}
		seen[key] = true
		n++
		ev.ServiceId = fmt.Sprintf("s-%d", n)
		h, b := protoMsg(t, ev)
		publish(stream.SubjectServiceCompleted, h, b)
		if ev.GetServiceType() != "repair" {
			return
		}
		visit := fmt.Sprintf("v-%d", n)
		h, b = protoMsg(t, &eventsv1.VisitPlanned{TenantId: ev.GetTenantId(), ServiceId: ev.GetServiceId(), VisitId: visit, DueAt: ev.GetCompletedAt()})
		publish(stream.SubjectVisitPlanned, h, b)
		h, b = protoMsg(t, &eventsv1.VisitDue{TenantId: ev.GetTenantId(), ServiceId: ev.GetServiceId(), VisitId: visit, DueAt: ev.GetCompletedAt()})
		publish(stream.SubjectVisitDue, h, b)
	})
	require.NoError(t, err)
	t.Cleanup(cc.Stop)
}

func natsWithStreams(t *testing.T) (string, jetstream.JetStream) {
	t.Helper()
	ns := natstest.Start(t)
	nc, err := nats.Connect(ns.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, stream.Ensure(t.Context(), js, stream.Config{}))
	return ns.ClientURL(), js
}

// TestRunAgainstFakePipeline runs the command end to end against the fake
// pipeline: every publish acked, every valid event matched to its
// ServiceCompleted, every repair to its VisitDue, every malformed event to
// a dead letter; the summary printed and written as JSON.
func TestRunAgainstFakePipeline(t *testing.T) {
	url, js := natsWithStreams(t)
	fakePipeline(t, js)
	file := filepath.Join(t.TempDir(), "summary.json")
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), slog.New(slog.NewTextHandler(&stderr, nil)),
		[]string{"-nats", url, "-rate", "0", "-n", "2000", "-tenants", "2", "-types", "repair,purchase,installation", "-malformed", "0.02",
			"-seed", "7", "-max-pending", "64", "-wait", "2m", "-progress", "10ms", "-json", file},
		&stdout, &stderr)
	require.NoError(t, err, "stderr:\n%s", stderr.String())
	t.Log(stdout.String())

	var s Summary
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &s))
	require.Equal(t, 2000, s.Published)
	require.Equal(t, 2000, s.Acked)
	require.Zero(t, s.Failed)
	require.Equal(t, "settled", s.Wait)
	require.Equal(t, int64(7), s.Seed)
	valid := s.Kinds["valid"]
	require.Equal(t, 2000, valid+s.Kinds["resend"]+s.Kinds["malformed"])
	require.Greater(t, s.Kinds["resend"], 50)
	require.Greater(t, s.Kinds["malformed"], 10)
	require.Equal(t, 2000, s.Latency[stageAck].Count, "every ack timed")
	require.Equal(t, valid, s.Latency[stageService].Count, "every valid event matched to its ServiceCompleted")
	require.Zero(t, s.ServicesMissing)
	require.Zero(t, s.ServicesTwice, "resends are not counted as services")
	repairs := s.ByType["repair"].Valid
	require.Positive(t, repairs)
	require.Equal(t, repairs, s.Latency[stageDue].Count, "every repair matched to its VisitDue")
	require.Equal(t, repairs, s.Latency[stagePlanned].Count)
	require.Equal(t, &Counts{Valid: repairs, Services: repairs, Planned: repairs, Due: repairs}, s.ByType["repair"])
	require.Zero(t, s.ByType["purchase"].Due)
	require.Equal(t, s.Kinds["malformed"], s.DeadLetters, "every malformed event dead-lettered")
	require.Equal(t, s.MalformedFields, s.DeadLetterFields, "for the field it breaks")
	require.Len(t, s.ByTenant, 2)
	require.False(t, s.TasksMeasured)
	_, ok := s.Latency[stageTask]
	require.False(t, ok)

	out := stdout.String()
	for _, want := range []string{"published 2000 in", "acked 2000, failed 0", "latency from publish", "VisitDue (1st)",
		"task (dispatch.tasks)   not measured (no -database-url)", "by service type", "by tenant", "settled"} {
		require.Contains(t, out, want)
	}
	require.Contains(t, stderr.String(), "publishing: published", "progress lines on stderr")
	require.NotContains(t, out+stderr.String(), "测试客户", "names are never printed")
	require.NotContains(t, out+stderr.String(), "+86139", "phones are never printed")
}

// TestRunFailsWhenPublishesFail: a stream that refuses every message makes
// the run stop early and fail, with the error counted in the summary.
func TestRunFailsWhenPublishesFail(t *testing.T) {
	url, js := natsWithStreams(t)
	str, err := js.Stream(t.Context(), stream.IngressStream)
	require.NoError(t, err)
	cfg := str.CachedInfo().Config
	cfg.MaxMsgSize = 16
	_, err = js.UpdateStream(t.Context(), cfg)
	require.NoError(t, err)

	file := filepath.Join(t.TempDir(), "summary.json")
	var stdout bytes.Buffer
	err = run(t.Context(), slog.New(slog.NewTextHandler(io.Discard, nil)),
		[]string{"-nats", url, "-rate", "0", "-n", "1000", "-wait", "0", "-progress", "0", "-json", file}, &stdout, io.Discard)
	require.ErrorContains(t, err, "publishes all failed")
	var usage usageError
	require.False(t, errors.As(err, &usage))
	var s Summary
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &s))
	require.Zero(t, s.Acked)
	require.GreaterOrEqual(t, s.Failed, maxConsecutiveFailures)
	require.Less(t, s.Published, 1000, "it stopped early")
	require.Contains(t, stdout.String(), "publish errors:")
}

func TestRunWithoutStreamsSaysWhy(t *testing.T) {
	ns := natstest.Start(t)
	err := run(t.Context(), slog.New(slog.NewTextHandler(io.Discard, nil)), []string{"-nats", ns.ClientURL(), "-n", "1"}, io.Discard, io.Discard)
	require.ErrorContains(t, err, "start Huifang first")
}

// -archive writes the archive of -n records and publishes nothing (no NATS
// server to reach); the same seed writes the same file.
func TestArchiveFlag(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.csv"), filepath.Join(dir, "b.csv")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, path := range []string{a, b} {
		require.NoError(t, run(t.Context(), log, []string{"-nats", "nats://127.0.0.1:1", "-archive", path, "-n", "500", "-seed", "3"}, io.Discard, io.Discard))
	}
	got, err := os.ReadFile(a)
	require.NoError(t, err)
	require.Equal(t, 501, strings.Count(string(got), "\n"), "the header and 500 records")
	again, err := os.ReadFile(b)
	require.NoError(t, err)
	require.Equal(t, got, again)
}
