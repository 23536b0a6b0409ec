// Package load generates the traffic an upstream ERP or DMS sends Huifang:
// completed services published on huifang.ingress.service.completed, at a
// target rate, of mixed service types, tenants and org units, with repeat
// customers, resends of the same source event (byte for byte or
// re-serialised), malformed events and a few oversized ones. The whole
// sequence follows from a seed (Plan, or a Generator for a run of unknown
// length), so a run can be replayed; Run publishes it and records which
// publishes JetStream acknowledged. The chaos suite and huifang-loadgen use it.
package load

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/huifang/huifang/pkg/stream"
)

// Kind is what an input is made to test.
type Kind string

const (
	// Valid is a completed service intake must store exactly once.
	Valid Kind = "valid"
	// Resend repeats an earlier valid event's source_event_id (the same
	// bytes, or the same event serialised again): no second record.
	Resend Kind = "resend"
	// Malformed breaks a rule (bad JSON, a missing or unknown field): intake
	// refuses it with the field named and dead-letters it.
	Malformed Kind = "malformed"
	// Oversized is malformed and just under the server's max payload: JetStream
	// takes it, but its dead letter (the payload plus the reason headers) is
	// over the limit.
	Oversized Kind = "oversized"
)

// Config describes the traffic.
type Config struct {
	Seed int64
	// Events is how many inputs are planned; Rate is how many are published per second.
	Events int
	Rate   float64
	// Tenants maps each tenant to its org units.
	Tenants map[string][]string
	// ServiceTypes are the types of the valid events.
	ServiceTypes []string
	// Customers is how many customers each tenant has; a fifth of them, the
	// regulars, get half of the services (repeat customers).
	Customers int
	// ResendRate and MalformedRate are the shares of resends and malformed
	// inputs (0.05 and 0.01 by default); Oversized is how many oversized ones.
	ResendRate    float64
	MalformedRate float64
	Oversized     int
	// MaxPayload is the server's max payload (1 MiB when zero), for the oversized inputs.
	MaxPayload int
	// SourceSystem names the upstream system ("erp-chaos" when empty).
	SourceSystem string
	// Now is when the run starts (time.Now when zero); completion times lie before it.
	Now time.Time
	// RunID goes into every source event id ("ev-<RunID>-000042"); the seed
	// when empty. A run that replays a seed against a system that has seen it
	// needs another RunID, or intake drops every event as a resend.
	RunID string
	// Identity, when set, gives customer c (0 <= c < Customers) of any tenant
	// its name and phone; the generator's own realistic ones otherwise.
	Identity func(c int) (name, phone string)
}

// Event is one planned input.
type Event struct {
	Seq  int
	Kind Kind
	// Tenant, SourceSystem and SourceEventID name the completed service
	// upstream; OrgUnit, ServiceType and CustomerID describe it.
	Tenant, SourceSystem, SourceEventID, OrgUnit, ServiceType, CustomerID string
	// Of is the Seq of the event a resend repeats (-1 otherwise).
	Of int
	// Field is the field a malformed input breaks (what intake must name).
	Field   string
	Payload []byte
}

// Key names the completed service upstream: tenant/source system/source event id.
func (e Event) Key() string { return e.Tenant + "/" + e.SourceSystem + "/" + e.SourceEventID }

// Describe is a line for failure messages.
func (e Event) Describe() string {
	s := fmt.Sprintf("#%d %s %s type=%s org_unit=%s customer=%s", e.Seq, e.Kind, e.Key(), e.ServiceType, e.OrgUnit, e.CustomerID)
	if e.Of >= 0 {
		s += fmt.Sprintf(" (resend of #%d)", e.Of)
	}
	if e.Field != "" {
		s += " field=" + e.Field
	}
	if len(e.Payload) > 512 {
		s += fmt.Sprintf(" (%d bytes)", len(e.Payload))
	}
	return s
}

type completed struct {
	TenantID      string            `json:"tenant_id"`
	SourceSystem  string            `json:"source_system"`
	SourceEventID string            `json:"source_event_id"`
	ServiceType   string            `json:"service_type"`
	CompletedAt   string            `json:"completed_at"`
	OrgUnit       string            `json:"org_unit,omitempty"`
	StaffID       string            `json:"staff_id,omitempty"`
	AmountMinor   int64             `json:"amount_minor,omitempty,string"`
	Customer      customer          `json:"customer"`
	Attributes    map[string]string `json:"attributes,omitempty"`
}

type customer struct {
	ExternalID string `json:"external_id,omitempty"`
	Name       string `json:"name"`
	Phone      string `json:"phone,omitempty"`
	OrgUnit    string `json:"org_unit,omitempty"`
}

var surnames = []rune("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗")
var givenNames = []string{"芳", "伟", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛", "明", "超", "秀英", "桂英", "建华", "志强"}

// Plan returns the inputs of cfg in publishing order; the same Config gives
// the same inputs.
func Plan(cfg Config) []Event {
	g := NewGenerator(cfg)
	events := make([]Event, 0, cfg.Events)
	for range cfg.Events {
		events = append(events, g.Next())
	}
	return events
}

// recentValid is how far back a resend reaches: one of the last 50 valid
// events, as an upstream retry would.
const recentValid = 50

// Generator makes the inputs of a Config one at a time, for a run whose
// length is not known in advance (Plan takes the first cfg.Events of them).
// Its memory does not grow with the run: it keeps the last valid events only.
// A Generator is not safe for concurrent use.
type Generator struct {
	cfg     Config
	rng     *rand.Rand
	tenants []string
	// oversizedAt are the places of the oversized inputs, spread evenly over
	// cfg.Events, away from the ends.
	oversizedAt map[int]bool
	// recent are the last recentValid valid events, oldest first.
	recent []Event
	seq    int
}

// NewGenerator returns the generator of cfg's inputs.
func NewGenerator(cfg Config) *Generator {
	cfg = withDefaults(cfg)
	g := &Generator{
		cfg:         cfg,
		rng:         rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15)),
		tenants:     sortedKeys(cfg.Tenants),
		oversizedAt: map[int]bool{},
	}
	for i := range cfg.Oversized {
		g.oversizedAt[(i+1)*cfg.Events/(cfg.Oversized+1)] = true
	}
	return g
}

// Next returns the next input.
func (g *Generator) Next() Event {
	cfg, rng, seq := g.cfg, g.rng, g.seq
	g.seq++
	r := rng.Float64()
	switch {
	case g.oversizedAt[seq]:
		return oversized(cfg, seq, g.tenants[rng.IntN(len(g.tenants))])
	case r < cfg.ResendRate && len(g.recent) > 0:
		// A resend of one of the last valid events, as an upstream retry would.
		e := g.recent[len(g.recent)-1-rng.IntN(min(recentValid, len(g.recent)))]
		e.Seq, e.Kind, e.Of = seq, Resend, e.Seq
		if rng.IntN(2) == 0 {
			// Serialised again: other bytes, the same event.
			e.Payload = []byte(strings.Replace(string(e.Payload), `{"tenant_id"`, `{ "tenant_id"`, 1))
		}
		return e
	case r < cfg.ResendRate+cfg.MalformedRate:
		return malformed(cfg, rng, seq, g.tenants[rng.IntN(len(g.tenants))])
	default:
		t := g.tenants[rng.IntN(len(g.tenants))]
		e := validEvent(cfg, rng, seq, t)
		g.recent = append(g.recent, e)
		if len(g.recent) > recentValid {
			g.recent = slices.Delete(g.recent, 0, 1)
		}
		return e
	}
}

func withDefaults(cfg Config) Config {
	if cfg.SourceSystem == "" {
		cfg.SourceSystem = "erp-chaos"
	}
	if cfg.RunID == "" {
		cfg.RunID = strconv.FormatInt(cfg.Seed, 10)
	}
	if cfg.Now.IsZero() {
		cfg.Now = time.Now()
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = 1 << 20
	}
	if cfg.Customers == 0 {
		cfg.Customers = 100
	}
	if len(cfg.Tenants) == 0 {
		cfg.Tenants = map[string][]string{"default": {""}}
	}
	if len(cfg.ServiceTypes) == 0 {
		cfg.ServiceTypes = []string{"repair"}
	}
	return cfg
}

func sortedKeys(m map[string][]string) []string { return slices.Sorted(maps.Keys(m)) }

func validEvent(cfg Config, rng *rand.Rand, seq int, tenant string) Event {
	units := cfg.Tenants[tenant]
	regulars := max(1, cfg.Customers/5)
	var c int
	if rng.IntN(2) == 0 {
		c = rng.IntN(regulars)
	} else {
		c = rng.IntN(cfg.Customers)
	}
	cid := fmt.Sprintf("cust-%04d", c)
	orgUnit := units[c%len(units)]
	name, phone := string(surnames[c%len(surnames)])+givenNames[(c/len(surnames))%len(givenNames)], fmt.Sprintf("+86138%08d", c)
	if cfg.Identity != nil {
		name, phone = cfg.Identity(c)
	}
	ev := completed{
		TenantID:      tenant,
		SourceSystem:  cfg.SourceSystem,
		SourceEventID: fmt.Sprintf("ev-%s-%06d", cfg.RunID, seq),
		ServiceType:   cfg.ServiceTypes[rng.IntN(len(cfg.ServiceTypes))],
		// Completed within the last hour, never in the future.
		CompletedAt: cfg.Now.Add(-time.Duration(rng.IntN(3600)) * time.Second).UTC().Format(time.RFC3339),
		OrgUnit:     orgUnit,
		StaffID:     fmt.Sprintf("staff-%02d", rng.IntN(12)),
		AmountMinor: int64(rng.IntN(500000)),
		Customer: customer{
			ExternalID: cid,
			Name:       name,
			Phone:      phone,
		},
	}
	b, _ := json.Marshal(ev)
	return Event{Seq: seq, Kind: Valid, Tenant: tenant, SourceSystem: cfg.SourceSystem, SourceEventID: ev.SourceEventID,
		OrgUnit: orgUnit, ServiceType: ev.ServiceType, CustomerID: cid, Of: -1, Payload: b}
}

// malformed inputs, each breaking one rule and the field intake must name.
func malformed(cfg Config, rng *rand.Rand, seq int, tenant string) Event {
	e := validEvent(cfg, rng, seq, tenant)
	e.Kind, e.SourceEventID = Malformed, fmt.Sprintf("bad-%s-%06d", cfg.RunID, seq)
	var ev completed
	_ = json.Unmarshal(e.Payload, &ev)
	ev.SourceEventID = e.SourceEventID
	switch rng.IntN(4) {
	case 0:
		b, _ := json.Marshal(ev)
		e.Payload, e.Field = b[:len(b)/2], "payload" // cut off: not JSON
		return e
	case 1:
		ev.Customer.ExternalID, e.Field = "", "customer.external_id"
	case 2:
		ev.ServiceType, e.Field = "teleportation", "service_type"
	default:
		ev.CompletedAt, e.Field = cfg.Now.Add(48*time.Hour).UTC().Format(time.RFC3339), "completed_at"
	}
	e.ServiceType = ev.ServiceType
	e.Payload, _ = json.Marshal(ev)
	return e
}

// oversized is a payload that is not JSON, sized just under the max payload
// with the headers the generator sends.
func oversized(cfg Config, seq int, tenant string) Event {
	id := fmt.Sprintf("big-%s-%06d", cfg.RunID, seq)
	head := fmt.Sprintf(`{"tenant_id":%q,"source_system":%q,"source_event_id":%q,"service_type":"repair","notes":"`, tenant, cfg.SourceSystem, id)
	n := cfg.MaxPayload - 256 - len(head)
	payload := head + strings.Repeat("很", n/3) // never closed: not JSON
	return Event{Seq: seq, Kind: Oversized, Tenant: tenant, SourceSystem: cfg.SourceSystem, SourceEventID: id,
		ServiceType: "repair", Of: -1, Field: "payload", Payload: []byte(payload)}
}

// EventID is the id a consumer's inbox gives e when it cannot read a better
// one (no Nats-Msg-Id, not decodable): a SHA-256 of subject and payload,
// as pkg/inbox.EventID makes it.
func EventID(e Event) string {
	h := sha256.New()
	h.Write([]byte(stream.SubjectIngressServiceCompleted))
	h.Write([]byte{0})
	h.Write(e.Payload)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Publish is what happened to one publish.
type Publish struct {
	Seq int
	// At is when it was sent, from the start of the run.
	At time.Duration
	// Acked is true when JetStream acknowledged it (it is in the stream).
	Acked     bool
	StreamSeq uint64
	Latency   time.Duration
	Err       string
}

// Result is what a run published.
type Result struct {
	Events   []Event
	Publish  []Publish // by Seq
	Start    time.Time
	Duration time.Duration
}

// Acked counts the acknowledged publishes of each kind.
func (r *Result) Acked() map[Kind]int {
	out := map[Kind]int{}
	for _, p := range r.Publish {
		if p.Acked {
			out[r.Events[p.Seq].Kind]++
		}
	}
	return out
}

// Failed counts the publishes JetStream did not acknowledge.
func (r *Result) Failed() int {
	n := 0
	for _, p := range r.Publish {
		if !p.Acked {
			n++
		}
	}
	return n
}

// Run publishes events at rate per second on the ingress subject through
// js (one attempt each, bounded by ackTimeout), several in flight at once,
// and returns what JetStream acknowledged. It stops early when ctx ends;
// the events not sent by then are recorded as not acknowledged.
func Run(ctx context.Context, js jetstream.JetStream, events []Event, rate float64, ackTimeout time.Duration) *Result {
	res := &Result{Events: events, Publish: make([]Publish, len(events)), Start: time.Now()}
	for i := range res.Publish {
		res.Publish[i] = Publish{Seq: i, Err: "not sent"}
	}
	interval := time.Duration(float64(time.Second) / rate)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	next := res.Start
	for i, e := range events {
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		next = next.Add(interval)
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			at := time.Since(res.Start)
			msg := &nats.Msg{Subject: stream.SubjectIngressServiceCompleted, Data: e.Payload, Header: nats.Header{}}
			msg.Header.Set(stream.HeaderContentType, stream.ContentTypeJSON)
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
			defer cancel()
			ack, err := js.PublishMsg(pctx, msg)
			p := Publish{Seq: i, At: at, Latency: time.Since(res.Start) - at}
			if err != nil {
				p.Err = err.Error()
			} else {
				p.Acked, p.StreamSeq = true, ack.Sequence
			}
			res.Publish[i] = p
		}()
	}
	wg.Wait()
	res.Duration = time.Since(res.Start)
	return res
}
