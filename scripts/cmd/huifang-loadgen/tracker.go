package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/scripts/internal/load"
)

// Stages of the pipeline whose latency from the publish is measured.
const (
	stageAck     = "ack"               // JetStream's PubAck: the event is in the ingress stream
	stageService = "service_completed" // intake stored it: huifang.events.service.completed
	stagePlanned = "visit_planned"     // the scheduler planned its first visit
	stageDue     = "visit_due"         // its first visit fell due: huifang.events.visit.due
	stageTask    = "task"              // dispatch made a task of it (dispatch.tasks.created_at)
)

func stages() []string { return []string{stageAck, stageService, stagePlanned, stageDue, stageTask} }

// tracker matches what the run published with what the pipeline made of it.
// The publisher, the ack callbacks, the consumers and the task poller all
// report to it; it is safe for concurrent use.
type tracker struct {
	mu    sync.Mutex
	start time.Time
	// publishEnd is when the last event was handed to NATS (zero while publishing).
	publishEnd time.Time

	pending     map[*nats.Msg]sent
	published   int
	acked       int
	failures    int
	consecutive int
	errs        map[string]int
	kinds       map[load.Kind]int
	badFields   map[string]int

	// records are the valid events by key (tenant/source system/source event
	// id), from their first publish; a resend shares its original's record.
	records   map[string]*record
	byService map[string]*record
	// visits are the visits planned for the run's services, by visit id;
	// unfired those not yet due.
	visits  map[string]*visit
	unfired map[string]*visit

	lat map[string]*latencies
	// awaitingService counts acked records without a ServiceCompleted;
	// awaitingTask fired visits without a task.
	awaitingService int
	awaitingTask    int
	servicesTwice   int
	undecodable     int
	deadLetters     int
	deadFields      map[string]int
	// lastChange is when the pipeline last showed progress on the run's events.
	lastChange time.Time
}

// sent is a publish awaiting its ack.
type sent struct {
	key   string
	kind  load.Kind
	field string
	at    time.Time
}

type record struct {
	tenant, serviceType string
	sentAt              time.Time
	acked               bool
	serviceID           string
	services            int
	planned, due, task  bool
}

type visit struct {
	rec    *record
	tenant string
	dueAt  time.Time
	fired  bool
	task   bool
}

func newTracker(start time.Time) *tracker {
	t := &tracker{
		start: start, pending: map[*nats.Msg]sent{}, errs: map[string]int{}, kinds: map[load.Kind]int{}, badFields: map[string]int{},
		records: map[string]*record{}, byService: map[string]*record{}, visits: map[string]*visit{}, unfired: map[string]*visit{},
		lat: map[string]*latencies{}, deadFields: map[string]int{}, lastChange: start,
	}
	for _, s := range stages() {
		t.lat[s] = &latencies{}
	}
	return t
}

// sending records e, about to be published as m at time at.
func (t *tracker) sending(e load.Event, m *nats.Msg, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.published++
	t.pending[m] = sent{key: e.Key(), kind: e.Kind, field: e.Field, at: at}
	if e.Kind == load.Valid {
		t.records[e.Key()] = &record{tenant: e.Tenant, serviceType: e.ServiceType, sentAt: at}
	}
}

// ack records JetStream's ack of m.
func (t *tracker) ack(m *nats.Msg, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.pending[m]
	if !ok {
		return
	}
	delete(t.pending, m)
	t.acked++
	t.consecutive = 0
	t.kinds[s.kind]++
	t.lat[stageAck].add(at.Sub(s.at))
	if s.kind == load.Malformed {
		t.badFields[s.field]++
	}
	if rec := t.records[s.key]; rec != nil && !rec.acked && s.kind != load.Malformed {
		rec.acked = true
		if rec.services == 0 {
			t.awaitingService++
		}
	}
}

// fail records that m was not stored: err is the publish's or the ack's error.
func (t *tracker) fail(m *nats.Msg, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.pending[m]; !ok {
		return
	}
	delete(t.pending, m)
	t.failures++
	t.consecutive++
	t.errs[errorClass(err)]++
}

// abandon counts every publish still awaiting its answer as failed with err.
func (t *tracker) abandon(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for m := range t.pending {
		delete(t.pending, m)
		t.failures++
		t.errs[errorClass(err)]++
	}
}

// errorClass is the error's message, for counting errors by kind.
func errorClass(err error) string {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return msg
}

// publishEnded marks the end of publishing.
func (t *tracker) publishEnded(at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.publishEnd = at
}

// consecutiveFailures is how many publishes failed since the last ack, and
// the most frequent error.
func (t *tracker) consecutiveFailures() (int, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.consecutive, topErrors(t.errs, 1)
}

// event takes a message of the events or dead-letter streams, received at at.
func (t *tracker) event(subject string, h nats.Header, data []byte, at time.Time) {
	switch subject {
	case stream.SubjectServiceCompleted:
		var ev eventsv1.ServiceCompleted
		if !t.decode(h, data, &ev) {
			return
		}
		t.service(tenant.Or(ev.GetTenantId())+"/"+ev.GetSourceSystem()+"/"+ev.GetSourceEventId(), ev.GetServiceId(), at)
	case stream.SubjectVisitPlanned:
		var ev eventsv1.VisitPlanned
		if !t.decode(h, data, &ev) {
			return
		}
		t.planned(ev.GetServiceId(), ev.GetVisitId(), tenant.Or(ev.GetTenantId()), ev.GetDueAt().AsTime(), at)
	case stream.SubjectVisitDue:
		var ev eventsv1.VisitDue
		if !t.decode(h, data, &ev) {
			return
		}
		t.due(ev.GetServiceId(), ev.GetVisitId(), tenant.Or(ev.GetTenantId()), ev.GetDueAt().AsTime(), at)
	case stream.DeadLetterSubject("intake"):
		t.deadLetter(h.Get(stream.HeaderField), at)
	}
}

// decode reads an event in protobuf, or protojson when its Content-Type says so.
func (t *tracker) decode(h nats.Header, data []byte, m proto.Message) bool {
	var err error
	if strings.HasPrefix(h.Get(stream.HeaderContentType), stream.ContentTypeJSON) {
		err = protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(data, m)
	} else {
		err = proto.Unmarshal(data, m)
	}
	if err != nil {
		t.mu.Lock()
		t.undecodable++
		t.mu.Unlock()
		return false
	}
	return true
}

// service takes intake's ServiceCompleted of key. Events of other traffic
// are ignored. One ordered consumer reads service.completed, visit.planned
// and visit.due from the one events stream in stream order, so a service's
// ServiceCompleted always comes before its visits.
func (t *tracker) service(key, serviceID string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := t.records[key]
	if rec == nil {
		return
	}
	rec.services++
	if rec.services > 1 {
		if rec.services == 2 {
			t.servicesTwice++
		}
		return
	}
	rec.serviceID = serviceID
	t.byService[serviceID] = rec
	if rec.acked {
		t.awaitingService--
	}
	t.lat[stageService].add(at.Sub(rec.sentAt))
	t.lastChange = at
}

func (t *tracker) planned(serviceID, visitID, ten string, dueAt, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := t.byService[serviceID]
	if rec == nil {
		return
	}
	if _, ok := t.visits[visitID]; !ok {
		v := &visit{rec: rec, tenant: ten, dueAt: dueAt}
		t.visits[visitID] = v
		t.unfired[visitID] = v
	}
	if !rec.planned {
		rec.planned = true
		t.lat[stagePlanned].add(at.Sub(rec.sentAt))
	}
	t.lastChange = at
}

// due takes a VisitDue; only the first of a service counts.
func (t *tracker) due(serviceID, visitID, ten string, dueAt, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := t.byService[serviceID]
	if rec == nil {
		return
	}
	v := t.visits[visitID]
	if v == nil {
		v = &visit{rec: rec, tenant: ten, dueAt: dueAt}
		t.visits[visitID] = v
	}
	if v.fired {
		return
	}
	v.fired = true
	delete(t.unfired, visitID)
	t.awaitingTask++
	if !rec.due {
		rec.due = true
		t.lat[stageDue].add(at.Sub(rec.sentAt))
	}
	t.lastChange = at
}

// task takes dispatch's task of a fired visit, created at createdAt
// (dispatch's clock).
func (t *tracker) task(ten, visitID string, createdAt, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v := t.visits[visitID]
	if v == nil || v.tenant != ten || v.task || !v.fired {
		return
	}
	v.task = true
	t.awaitingTask--
	if !v.rec.task {
		v.rec.task = true
		t.lat[stageTask].add(createdAt.Sub(v.rec.sentAt))
	}
	t.lastChange = at
}

func (t *tracker) deadLetter(field string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.deadLetters++
	if field == "" {
		field = "(none)"
	}
	t.deadFields[field]++
	t.lastChange = at
}

// awaitingTasks are the fired visits without a task yet (tenants and visit
// ids side by side), at most limit of them.
func (t *tracker) awaitingTasks(limit int) (tenants, visits []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, v := range t.visits {
		if v.fired && !v.task {
			tenants, visits = append(tenants, v.tenant), append(visits, id)
			if len(visits) == limit {
				break
			}
		}
	}
	return tenants, visits
}

// settled says whether the pipeline has done all it will do with the run's
// events: every acked valid event has its ServiceCompleted, every planned
// visit due by now fired, every fired visit has a task (when tasks are
// measured), every acked malformed event is dead-lettered, and nothing
// moved for quiet.
func (t *tracker) settled(now time.Time, quiet time.Duration, tasks bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.awaitingService > 0 || (tasks && t.awaitingTask > 0) || t.deadLetters < t.kinds[load.Malformed] {
		return false
	}
	for _, v := range t.unfired {
		if !v.dueAt.After(now) {
			return false
		}
	}
	return now.Sub(t.lastChange) >= quiet
}

// latencies are the measured durations of one stage.
type latencies struct{ d []time.Duration }

func (l *latencies) add(d time.Duration) { l.d = append(l.d, d) }

// Percentiles summarise a stage's latencies, in milliseconds.
type Percentiles struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func (l *latencies) percentiles() Percentiles {
	return percentilesOf(l.d)
}

// percentilesOf gives the nearest-rank percentiles of d (d is not changed).
func percentilesOf(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	ms := func(x time.Duration) float64 { return math.Round(float64(x)/float64(time.Millisecond)*10) / 10 }
	return Percentiles{Count: len(s), P50: ms(nearestRank(s, 0.50)), P90: ms(nearestRank(s, 0.90)), P99: ms(nearestRank(s, 0.99)), Max: ms(s[len(s)-1])}
}

// nearestRank is the p-th percentile of sorted: the smallest value with at
// least p of the values at or below it.
func nearestRank(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Counts are what became of the valid events of a tenant or service type.
type Counts struct {
	// Valid are the acked valid events (resends not counted).
	Valid    int `json:"valid"`
	Services int `json:"service_completed"`
	Planned  int `json:"visit_planned"`
	Due      int `json:"visit_due"`
	Tasks    int `json:"tasks"`
}

// Summary is what a run did and measured.
type Summary struct {
	RunID        string    `json:"run_id"`
	Seed         int64     `json:"seed"`
	NATS         string    `json:"nats"`
	SourceSystem string    `json:"source_system"`
	StartedAt    time.Time `json:"started_at"`
	// TargetRate is -rate (0: as fast as possible); PublishRate what was achieved.
	TargetRate     float64 `json:"target_rate"`
	PublishSeconds float64 `json:"publish_seconds"`
	PublishRate    float64 `json:"publish_rate"`

	Published int            `json:"published"`
	Acked     int            `json:"acked"`
	Failed    int            `json:"failed"`
	Errors    map[string]int `json:"errors,omitempty"`
	// Kinds counts the acked events: valid, resend, malformed.
	Kinds           map[string]int `json:"kinds"`
	MalformedFields map[string]int `json:"malformed_fields"`

	// Latency is per stage (ack, service_completed, visit_planned,
	// visit_due, task), from each valid event's first publish; a stage
	// counts once per event.
	Latency       map[string]Percentiles `json:"latency"`
	TasksMeasured bool                   `json:"tasks_measured"`
	ByTenant      map[string]*Counts     `json:"by_tenant"`
	ByType        map[string]*Counts     `json:"by_service_type"`

	// ServicesMissing are acked valid events without a ServiceCompleted when
	// the run ended; ServicesTwice events with more than one.
	ServicesMissing int `json:"services_missing"`
	ServicesTwice   int `json:"services_twice"`
	// VisitsDueNotFired are planned visits due by the end that had no VisitDue;
	// FiredWithoutTask fired visits without a task (when tasks are measured).
	VisitsDueNotFired int `json:"visits_due_not_fired"`
	FiredWithoutTask  int `json:"fired_without_task"`
	// DeadLetters are intake's dead letters seen during the run (any
	// traffic's), by the field they name.
	DeadLetters      int            `json:"dead_letters"`
	DeadLetterFields map[string]int `json:"dead_letter_fields"`
	Undecodable      int            `json:"undecodable_events,omitempty"`
	// Wait is how the wait after the last ack ended: settled, timeout,
	// interrupted or skipped (-wait 0); WaitSeconds how long it took.
	Wait        string  `json:"wait"`
	WaitSeconds float64 `json:"wait_seconds"`
}

// summary sums the run up at now.
func (t *tracker) summary(now time.Time, wait string, tasks bool) *Summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	end := t.publishEnd
	if end.IsZero() {
		end = now
	}
	s := &Summary{
		StartedAt: t.start.UTC(), PublishSeconds: round(end.Sub(t.start).Seconds(), 3),
		Published: t.published, Acked: t.acked, Failed: t.failures, Errors: copyCounts(t.errs),
		Kinds: map[string]int{}, MalformedFields: copyCounts(t.badFields), Latency: map[string]Percentiles{}, TasksMeasured: tasks,
		ByTenant: map[string]*Counts{}, ByType: map[string]*Counts{}, ServicesTwice: t.servicesTwice,
		DeadLetters: t.deadLetters, DeadLetterFields: copyCounts(t.deadFields), Undecodable: t.undecodable,
		Wait: wait, WaitSeconds: round(now.Sub(end).Seconds(), 3),
	}
	if s.PublishSeconds > 0 {
		s.PublishRate = round(float64(t.published)/end.Sub(t.start).Seconds(), 1)
	}
	for _, k := range []load.Kind{load.Valid, load.Resend, load.Malformed, load.Oversized} {
		if n := t.kinds[k]; n > 0 || k != load.Oversized {
			s.Kinds[string(k)] = n
		}
	}
	for _, st := range stages() {
		if st == stageTask && !tasks {
			continue
		}
		s.Latency[st] = t.lat[st].percentiles()
	}
	for _, rec := range t.records {
		if !rec.acked {
			continue
		}
		for _, c := range []*Counts{counts(s.ByTenant, rec.tenant), counts(s.ByType, rec.serviceType)} {
			c.Valid++
			c.Services += b2i(rec.services > 0)
			c.Planned += b2i(rec.planned)
			c.Due += b2i(rec.due)
			c.Tasks += b2i(rec.task)
		}
		if rec.services == 0 {
			s.ServicesMissing++
		}
	}
	for _, v := range t.unfired {
		if !v.dueAt.After(now) {
			s.VisitsDueNotFired++
		}
	}
	if tasks {
		s.FiredWithoutTask = t.awaitingTask
	}
	return s
}

func counts(m map[string]*Counts, k string) *Counts {
	if m[k] == nil {
		m[k] = &Counts{}
	}
	return m[k]
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func copyCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// topErrors names the n most frequent errors with their counts.
func topErrors(errs map[string]int, n int) string {
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range errs {
		all = append(all, kv{k, v})
	}
	slices.SortFunc(all, func(a, b kv) int {
		if a.v != b.v {
			return b.v - a.v
		}
		return strings.Compare(a.k, b.k)
	})
	var parts []string
	for _, e := range all[:min(n, len(all))] {
		parts = append(parts, fmt.Sprintf("%d× %s", e.v, e.k))
	}
	return strings.Join(parts, "; ")
}
