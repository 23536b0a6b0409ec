package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"
	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/scripts/internal/load"
)

// Violation is one broken invariant, with what it takes to debug it.
type Violation struct {
	// Invariant names the rule (e.g. "intake: one service per acknowledged event").
	Invariant string
	// Lost and Doubled count the effects missing and the ones made twice.
	Lost, Doubled int
	// Detail lists examples: the events, visits or rows concerned.
	Detail []string
}

func (v Violation) String() string {
	s := fmt.Sprintf("%s: %d lost, %d doubled", v.Invariant, v.Lost, v.Doubled)
	if v.Lost == 0 && v.Doubled == 0 {
		s = v.Invariant
	}
	for i, d := range v.Detail {
		if i == 12 {
			s += fmt.Sprintf("\n      … and %d more", len(v.Detail)-i)
			break
		}
		s += "\n      " + d
	}
	return s
}

// observed is what the databases, the streams and the APIs say after the run.
type observed struct {
	services      map[string][]string // upstream key → intake service ids
	serviceKey    map[string]string   // intake service id → upstream key
	scheduled     map[string]bool     // service ids the scheduler recorded
	visits        []plannedVisit
	visitDue      map[string]int // visit id → VisitDue rows in scheduler's outbox
	tasks         map[string][]task
	learned       map[string]bool // visits feedback learned
	records       map[string]record
	outboxes      map[string]outboxState
	deadLetters   []deadLetter
	dlqStream     map[string]int // Nats-Msg-Id → messages on HUIFANG_DLQ
	dlqStreamErr  string
	messages      map[string]string // task id → SMS message status
	sendTries     int               // SMS messages tried more than once (a send lease ran out, a retry)
	sentEvents    map[string]int    // task id → VisitAttempted(SENT) rows in dispatch's outbox
	sentMessages  map[string]int    // idempotency key → local sends
	satisfaction  map[string]*analyticsv1.GetSatisfactionResponse
	satisfyErr    string
	consumerState map[string]string // durable → pending/ack pending, when not drained
	// inFlight says some durable holds delivered, unacknowledged messages:
	// those of a killed consumer come again only after the ack wait (30 s).
	inFlight bool
	// leasedUntil is the latest lease of a task still claimed or sending,
	// or the next try of an open one: until then it may come back by design.
	leasedUntil time.Time
	rejected    map[string]string // schema/rejected row id → its event id
	// unhandled lists, per durable, events its producer published that it
	// never applied (neither its inbox nor, for a keyed one, its table holds them).
	unhandled map[string][]string
	// failures are the rows of each schema's inbox_failures (where it exists):
	// the failures a consumer counted towards dead-lettering a message.
	failures []string
}

// handoffs are the producer → consumer steps whose gaps the checks name:
// the producer's schema and subject, the consumer's schema and durable,
// and for a consumer that keeps no inbox row for most events, where else
// the id of an event it handled is kept (kept: a table and its column of
// event ids in the consumer's schema). The scheduler's services keep the
// id of the ServiceCompleted that first recorded them, feedback's visits
// the id of the VisitDue that stored them, and its assignments the id of
// the VisitAssigned kept: an assignment replaced by a newer one, or heard
// after it, leaves no trace, and may be named in a gap's detail.
// Dispatch's VisitDue consumer keeps no inbox entries (its tasks are keyed
// by the visit): the tasks check names each visit without a task.
var handoffs = []struct{ from, subject, to, durable, kept string }{
	{"intake", stream.SubjectServiceCompleted, "scheduler", "scheduler-service-completed", "services.event_id"},
	{"scheduler", stream.SubjectVisitDue, "feedback", "feedback-visit-due", "visits.event_id"},
	{"dispatch", stream.SubjectVisitAssigned, "feedback", "feedback-visit-assigned", "visit_assignments.event_id"},
	{"feedback", stream.SubjectVisitLogged, "analytics", "analytics-events", ""},
}

type plannedVisit struct {
	ID, Tenant, ServiceID, PolicyID, Status string
	DueAt                                   time.Time
	FiredAt                                 *time.Time
}

type task struct {
	ID, Tenant, VisitID, Status, Channel, Agent string
	CreatedAt                                   time.Time
	LeaseUntil                                  *time.Time
}

type record struct {
	Tenant, VisitID, Agent string
	Overall                typesv1.Rating
	LoggedAt               time.Time
}

type outboxState struct {
	Unpublished, Quarantined int
	Oldest                   string // the oldest unpublished row
	QuarantinedRows          []string
}

type deadLetter struct {
	Schema, ID, Subject, Reason, Field, OrigSubject string
	Payload                                         []byte
	Published                                       bool
}

var schemas = []string{"intake", "scheduler", "dispatch", "feedback", "analytics"}

// observe reads everything the checks need.
func observe(ctx context.Context, sys *System, wiped bool) (*observed, error) {
	o := &observed{services: map[string][]string{}, serviceKey: map[string]string{}, scheduled: map[string]bool{},
		visitDue: map[string]int{}, tasks: map[string][]task{}, learned: map[string]bool{}, records: map[string]record{},
		outboxes: map[string]outboxState{}, dlqStream: map[string]int{}, messages: map[string]string{}, sentMessages: map[string]int{},
		satisfaction: map[string]*analyticsv1.GetSatisfactionResponse{}, consumerState: map[string]string{},
		rejected: map[string]string{}, unhandled: map[string][]string{}, sentEvents: map[string]int{}}
	db := sys.DB
	q := func(sql string, args []any, scan func(pgx.Rows) error) error {
		rows, err := db.Query(ctx, sql, args...)
		if err != nil {
			words := strings.Fields(sql)
			return fmt.Errorf("%s: %w", strings.Join(words[:min(6, len(words))], " "), err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	if err := q(`SELECT id, tenant_id, source_system, source_event_id FROM intake.services`, nil, func(r pgx.Rows) error {
		var id, t, sys, src string
		if err := r.Scan(&id, &t, &sys, &src); err != nil {
			return err
		}
		key := t + "/" + sys + "/" + src
		o.services[key] = append(o.services[key], id)
		o.serviceKey[id] = key
		return nil
	}); err != nil {
		return nil, err
	}
	if err := q(`SELECT service_id FROM scheduler.services`, nil, func(r pgx.Rows) error {
		var id string
		err := r.Scan(&id)
		o.scheduled[id] = true
		return err
	}); err != nil {
		return nil, err
	}
	if err := q(`SELECT id, tenant_id, service_id, policy_id, status, due_at, fired_at FROM scheduler.planned_visits`, nil, func(r pgx.Rows) error {
		var v plannedVisit
		err := r.Scan(&v.ID, &v.Tenant, &v.ServiceID, &v.PolicyID, &v.Status, &v.DueAt, &v.FiredAt)
		o.visits = append(o.visits, v)
		return err
	}); err != nil {
		return nil, err
	}
	if err := q(`SELECT payload FROM scheduler.outbox WHERE subject = $1`, []any{stream.SubjectVisitDue}, func(r pgx.Rows) error {
		var b []byte
		if err := r.Scan(&b); err != nil {
			return err
		}
		ev := &eventsv1.VisitDue{}
		if err := proto.Unmarshal(b, ev); err != nil {
			return fmt.Errorf("scheduler.outbox VisitDue: %w", err)
		}
		o.visitDue[ev.GetVisitId()]++
		return nil
	}); err != nil {
		return nil, err
	}
	if err := q(`SELECT id, tenant_id, visit_id, status, channel, agent_id, created_at, lease_expires_at, available_at FROM dispatch.tasks`, nil, func(r pgx.Rows) error {
		var t task
		var available time.Time
		err := r.Scan(&t.ID, &t.Tenant, &t.VisitID, &t.Status, &t.Channel, &t.Agent, &t.CreatedAt, &t.LeaseUntil, &available)
		if (t.Status == "claimed" || t.Status == "sending") && t.LeaseUntil != nil && t.LeaseUntil.After(o.leasedUntil) {
			o.leasedUntil = *t.LeaseUntil
		}
		// An open message task waiting for its next try (a send that failed
		// for the moment is tried again after SEND_BACKOFF) comes back by
		// design too; a phone task's next try is the agents' to make.
		if t.Status == "open" && t.Channel != "CHANNEL_PHONE" && available.After(o.leasedUntil) {
			o.leasedUntil = available
		}
		o.tasks[t.VisitID] = append(o.tasks[t.VisitID], t)
		return err
	}); err != nil {
		return nil, err
	}
	if err := q(`SELECT visit_id FROM feedback.visits`, nil, func(r pgx.Rows) error {
		var id string
		err := r.Scan(&id)
		o.learned[id] = true
		return err
	}); err != nil {
		return nil, err
	}
	if err := q(`SELECT tenant_id, visit_id, agent_id, answers, logged_at FROM feedback.visit_records`, nil, func(r pgx.Rows) error {
		var rec record
		var answers []byte
		if err := r.Scan(&rec.Tenant, &rec.VisitID, &rec.Agent, &answers, &rec.LoggedAt); err != nil {
			return err
		}
		var as []struct{ Aspect, Rating string }
		if err := json.Unmarshal(answers, &as); err != nil {
			return fmt.Errorf("feedback.visit_records answers of %s: %w", rec.VisitID, err)
		}
		for _, a := range as {
			if a.Aspect == "overall" {
				rec.Overall = typesv1.Rating(typesv1.Rating_value[a.Rating])
			}
		}
		o.records[rec.Tenant+"/"+rec.VisitID] = rec
		return nil
	}); err != nil {
		return nil, err
	}
	if err := q(`SELECT task_id, status, tries FROM dispatch.messages`, nil, func(r pgx.Rows) error {
		var id, st string
		var tries int
		err := r.Scan(&id, &st, &tries)
		o.messages[id] = st
		if tries > 1 {
			o.sendTries++
		}
		return err
	}); err != nil {
		return nil, err
	}
	if err := q(`SELECT payload FROM dispatch.outbox WHERE subject = $1`, []any{stream.SubjectVisitAttempted}, func(r pgx.Rows) error {
		var b []byte
		if err := r.Scan(&b); err != nil {
			return err
		}
		ev := &eventsv1.VisitAttempted{}
		if err := proto.Unmarshal(b, ev); err != nil {
			return fmt.Errorf("dispatch.outbox VisitAttempted: %w", err)
		}
		if ev.GetDisposition() == typesv1.Disposition_DISPOSITION_SENT {
			o.sentEvents[ev.GetTaskId()]++
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := q(`SELECT idempotency_key FROM dispatch.local_sent_messages`, nil, func(r pgx.Rows) error {
		var k string
		err := r.Scan(&k)
		o.sentMessages[k]++
		return err
	}); err != nil {
		return nil, err
	}
	for _, s := range schemas {
		st, dls, err := outboxOf(ctx, sys, s)
		if err != nil {
			return nil, err
		}
		o.outboxes[s] = st
		o.deadLetters = append(o.deadLetters, dls...)
		if err := q(`SELECT id, event_id FROM `+s+`.rejected_events`, nil, func(r pgx.Rows) error {
			var id, ev string
			err := r.Scan(&id, &ev)
			o.rejected[s+"/"+id] = ev
			return err
		}); err != nil {
			return nil, err
		}
	}
	for _, s := range schemas {
		var exists bool
		if err := db.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, s+".inbox_failures").Scan(&exists); err != nil || !exists {
			continue
		}
		if err := q(`SELECT consumer, event_id, failures, left(last_error, 300) FROM `+s+`.inbox_failures ORDER BY consumer, event_id`, nil, func(r pgx.Rows) error {
			var consumer, id, last string
			var n int
			err := r.Scan(&consumer, &id, &n, &last)
			o.failures = append(o.failures, fmt.Sprintf("%s.inbox_failures: %s %q failed %d times, last: %s", s, consumer, id, n, last))
			return err
		}); err != nil {
			return nil, err
		}
	}
	for _, h := range handoffs {
		kept := ""
		if table, column, ok := strings.Cut(h.kept, "."); ok {
			kept = ` AND NOT EXISTS (SELECT 1 FROM ` + h.to + `.` + table + ` k WHERE k.` + column + ` = o.id)`
		}
		if err := q(`SELECT o.id, o.published_at FROM `+h.from+`.outbox o
WHERE o.subject = $1 AND NOT EXISTS (SELECT 1 FROM `+h.to+`.inbox i WHERE i.consumer = $2 AND i.event_id = o.id)`+kept+` ORDER BY o.seq`,
			[]any{h.subject, h.durable}, func(r pgx.Rows) error {
				var id string
				var published *time.Time
				if err := r.Scan(&id, &published); err != nil {
					return err
				}
				o.unhandled[h.durable] = append(o.unhandled[h.durable], fmt.Sprintf("%s %s by %s (published %s) never handled by %s",
					h.subject, id, h.from, fmtTime(published), h.durable))
				return nil
			}); err != nil {
			return nil, err
		}
	}
	for _, t := range sortedTenants() {
		var resp *analyticsv1.GetSatisfactionResponse
		err := retry(ctx, "GetSatisfaction", func(ctx context.Context) error {
			var err error
			resp, err = sys.Analytics().GetSatisfaction(ctx, &analyticsv1.GetSatisfactionRequest{TenantId: t, Aspect: "overall"})
			return err
		})
		if err != nil {
			o.satisfyErr = err.Error()
			continue
		}
		o.satisfaction[t] = resp
	}
	if !wiped {
		// Read again while a cluster node is away or electing ("no
		// responders"): a reading that fails is no finding about the system.
		if err := retry(ctx, "reading HUIFANG_DLQ", func(ctx context.Context) error { return readDLQ(ctx, sys, o) }); err != nil {
			o.dlqStreamErr = err.Error()
		}
	}
	for _, name := range []string{stream.IngressStream, stream.EventsStream} {
		states, inFlight := consumersNotDrained(ctx, sys, name)
		for d, st := range states {
			o.consumerState[d] = st
		}
		o.inFlight = o.inFlight || inFlight
	}
	return o, nil
}

// outboxOf reads a schema's outbox: its backlog, what it set aside, and its dead letters.
func outboxOf(ctx context.Context, sys *System, schema string) (outboxState, []deadLetter, error) {
	var st outboxState
	quarantine := false
	if err := sys.DB.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'outbox' AND column_name = 'quarantined_at')`, schema).Scan(&quarantine); err != nil {
		return st, nil, err
	}
	pending := `published_at IS NULL`
	if quarantine {
		pending += ` AND quarantined_at IS NULL`
	}
	if err := sys.DB.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.outbox WHERE `+pending).Scan(&st.Unpublished); err != nil {
		return st, nil, err
	}
	if st.Unpublished > 0 {
		var seq int64
		var subject string
		var size int
		var created time.Time
		if err := sys.DB.QueryRow(ctx, `SELECT seq, subject, length(payload), created_at FROM `+schema+`.outbox WHERE `+pending+` ORDER BY seq LIMIT 1`).Scan(&seq, &subject, &size, &created); err != nil {
			return st, nil, err
		}
		st.Oldest = fmt.Sprintf("seq %d %s (%d bytes, written %s)", seq, subject, size, created.Format("15:04:05.000"))
	}
	if quarantine {
		rows, err := sys.DB.Query(ctx, `SELECT seq, subject, length(payload), coalesce(quarantine_reason, '') FROM `+schema+`.outbox WHERE quarantined_at IS NOT NULL ORDER BY seq`)
		if err != nil {
			return st, nil, err
		}
		for rows.Next() {
			var seq int64
			var subject, reason string
			var size int
			if err := rows.Scan(&seq, &subject, &size, &reason); err != nil {
				rows.Close()
				return st, nil, err
			}
			st.Quarantined++
			st.QuarantinedRows = append(st.QuarantinedRows, fmt.Sprintf("%s.outbox seq %d %s (%d bytes): %s", schema, seq, subject, size, reason))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return st, nil, err
		}
	}
	rows, err := sys.DB.Query(ctx, `SELECT id, subject, payload, headers, published_at IS NOT NULL FROM `+schema+`.outbox WHERE subject LIKE 'huifang.deadletter.%' ORDER BY seq`)
	if err != nil {
		return st, nil, err
	}
	defer rows.Close()
	var dls []deadLetter
	for rows.Next() {
		d := deadLetter{Schema: schema}
		var headers []byte
		if err := rows.Scan(&d.ID, &d.Subject, &d.Payload, &headers, &d.Published); err != nil {
			return st, nil, err
		}
		h := map[string][]string{}
		_ = json.Unmarshal(headers, &h)
		first := func(k string) string {
			if v := h[k]; len(v) > 0 {
				return v[0]
			}
			return ""
		}
		d.Reason, d.Field, d.OrigSubject = first(stream.HeaderReason), first(stream.HeaderField), first(stream.HeaderOrigSubject)
		dls = append(dls, d)
	}
	return st, dls, rows.Err()
}

// readDLQ counts the dead-letter stream's messages by Nats-Msg-Id.
func readDLQ(ctx context.Context, sys *System, o *observed) error {
	seen := map[string]int{}
	str, err := sys.JS.Stream(ctx, stream.DLQStream)
	if err != nil {
		return err
	}
	want := str.CachedInfo().State.Msgs
	if want == 0 {
		return nil
	}
	cons, err := sys.JS.OrderedConsumer(ctx, stream.DLQStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return err
	}
	got := uint64(0)
	for got < want {
		batch, err := cons.Fetch(int(min(want-got, 256)), jetstream.FetchMaxWait(3*time.Second))
		if err != nil {
			return err
		}
		n := got
		for m := range batch.Messages() {
			seen[m.Headers().Get(jetstream.MsgIDHeader)]++
			got++
		}
		if batch.Error() != nil {
			return batch.Error()
		}
		if got == n {
			return fmt.Errorf("read %d of %d dead letters, then nothing", got, want)
		}
	}
	o.dlqStream = seen
	return nil
}

// consumersNotDrained lists the durables of a stream that still hold
// messages, and says whether any holds delivered, unacknowledged ones.
func consumersNotDrained(ctx context.Context, sys *System, streamName string) (map[string]string, bool) {
	out := map[string]string{}
	inFlight := false
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	str, err := sys.JS.Stream(cctx, streamName)
	if err != nil {
		out[streamName] = "stream: " + err.Error()
		return out, false
	}
	lister := str.ListConsumers(cctx)
	for info := range lister.Info() {
		if info.Config.Durable == "" {
			continue // an ordered consumer of a reader, not a service's
		}
		inFlight = inFlight || info.NumAckPending > 0
		if info.NumPending > 0 || info.NumAckPending > 0 {
			out[info.Name] = fmt.Sprintf("%d pending, %d unacknowledged, %d redelivered", info.NumPending, info.NumAckPending, info.NumRedelivered)
		}
	}
	if err := lister.Err(); err != nil {
		out[streamName] = "consumers: " + err.Error()
	}
	return out, inFlight
}

// Outcome is what a scenario's checks found.
type Outcome struct {
	Violations []Violation
	// Figures for the report.
	Published, Acked, AckedValid, Resends, BadInputs int
	Services, DueVisits, Tasks, Records              int
	Lost, Doubled                                    int
	ProviderDuplicates                               int
	// SendsRetried counts SMS messages tried more than once: a send lease ran out, or a send failed.
	SendsRetried int
	// WithStore counts acknowledged ingress events that only a single
	// server's store held when it was wiped (acknowledged after the last
	// sequence intake had taken, before the kill): gone with the disk, not
	// lost by Huifang; an upstream must send them again (docs/reliability.md).
	WithStore       int
	WithStoreDetail []string
}

// check applies every invariant to what was observed.
func check(sys *System, res *load.Result, crew []Claim, poisons []Poisoned, faults []Injected, o *observed, settleStart time.Time) Outcome {
	var out Outcome
	add := func(v Violation) {
		if v.Lost > 0 || v.Doubled > 0 || len(v.Detail) > 0 {
			out.Violations = append(out.Violations, v)
			out.Lost += v.Lost
			out.Doubled += v.Doubled
		}
	}
	at := func(seq int) string {
		p := res.Publish[seq]
		return fmt.Sprintf("published at +%.2fs%s", p.At.Seconds(), during(res.Start.Add(p.At), faults))
	}

	// Intake: every acknowledged valid event has exactly one service record;
	// no event has two; bad input has none.
	acked := map[string]int{} // key → first acknowledged seq
	everSent := map[string]int{}
	bad := map[string]load.Event{}
	for _, e := range res.Events {
		p := res.Publish[e.Seq]
		if p.Err != "not sent" {
			out.Published++
		}
		if p.Acked {
			out.Acked++
		}
		switch e.Kind {
		case load.Valid, load.Resend:
			if e.Kind == load.Resend && p.Acked {
				out.Resends++
			}
			if _, ok := everSent[e.Key()]; !ok {
				everSent[e.Key()] = e.Seq
			}
			if _, ok := acked[e.Key()]; !ok && p.Acked {
				acked[e.Key()] = e.Seq
			}
		default:
			if p.Acked {
				out.BadInputs++
				bad[e.Key()] = e
			}
		}
	}
	out.AckedValid = len(acked)
	v := Violation{Invariant: "intake: exactly one service record per acknowledged valid ingress event"}
	for _, key := range slices.Sorted(maps.Keys(acked)) {
		seq := acked[key]
		switch n := len(o.services[key]); {
		case n == 0 && withWipedStore(res.Start.Add(res.Publish[seq].At), res.Publish[seq].StreamSeq, faults):
			out.WithStore++
			out.WithStoreDetail = append(out.WithStoreDetail, fmt.Sprintf("%s, %s, acknowledged (stream seq %d) by the server whose store was then wiped, before intake took it", res.Events[seq].Describe(), at(seq), res.Publish[seq].StreamSeq))
		case n == 0:
			v.Lost++
			v.Detail = append(v.Detail, fmt.Sprintf("LOST %s, %s, acknowledged (stream seq %d)", res.Events[seq].Describe(), at(seq), res.Publish[seq].StreamSeq))
		case n > 1:
			v.Doubled += n - 1
			v.Detail = append(v.Detail, fmt.Sprintf("DOUBLED %s: %d service rows %v", res.Events[seq].Describe(), n, o.services[key]))
		}
	}
	for key, ids := range o.services {
		if _, ok := everSent[key]; !ok {
			if e, isBad := bad[key]; isBad {
				v.Doubled++
				v.Detail = append(v.Detail, fmt.Sprintf("STORED BAD INPUT %s as %v", e.Describe(), ids))
			} else if _, ok := acked[key]; !ok {
				v.Detail = append(v.Detail, fmt.Sprintf("UNKNOWN service %s %v: not sent by the generator", key, ids))
			}
		}
	}
	add(v)
	out.Services = len(o.serviceKey)

	// Scheduler: every stored service reached it exactly once (ServiceCompleted).
	v = Violation{Invariant: "scheduler: every intake service's ServiceCompleted consumed (scheduler.services)"}
	for _, id := range slices.Sorted(maps.Keys(o.serviceKey)) {
		if !o.scheduled[id] {
			v.Lost++
			key := o.serviceKey[id]
			desc := key
			if seq, ok := everSent[key]; ok {
				desc = res.Events[seq].Describe() + ", " + at(seq)
			}
			v.Detail = append(v.Detail, fmt.Sprintf("LOST service %s (%s): no scheduler.services row", id, desc))
		}
	}
	if v.Lost > 0 {
		v.Detail = append(v.Detail, o.unhandled["scheduler-service-completed"]...)
	}
	add(v)

	// Durable timers: no visit due and unfired; none fired early; each fired
	// visit has exactly one VisitDue, one task, and feedback knows it.
	early := Violation{Invariant: "scheduler: no visit fired before its due time"}
	unfired := Violation{Invariant: "scheduler: every visit that fell due fired"}
	due := Violation{Invariant: "scheduler: exactly one VisitDue per fired visit (scheduler.outbox)"}
	tasks := Violation{Invariant: "dispatch: exactly one task per fired visit"}
	learned := Violation{Invariant: "feedback: every fired visit learned (feedback.visits)"}
	visitByID := map[string]plannedVisit{}
	for _, pv := range o.visits {
		visitByID[pv.ID] = pv
		switch {
		case pv.Status == "planned" && pv.DueAt.Before(settleStart):
			unfired.Lost++
			unfired.Detail = append(unfired.Detail, fmt.Sprintf("visit %s (policy %s, service %s) due %s still planned", pv.ID, pv.PolicyID, pv.ServiceID, pv.DueAt.Format("15:04:05.000")))
		case pv.Status == "due":
			out.DueVisits++
			if pv.FiredAt != nil && pv.FiredAt.Before(pv.DueAt) {
				early.Doubled++
				early.Detail = append(early.Detail, fmt.Sprintf("visit %s fired %s, due %s", pv.ID, pv.FiredAt.Format("15:04:05.000"), pv.DueAt.Format("15:04:05.000")))
			}
			switch n := o.visitDue[pv.ID]; {
			case n == 0:
				due.Lost++
				due.Detail = append(due.Detail, fmt.Sprintf("visit %s marked due without a VisitDue in scheduler.outbox", pv.ID))
			case n > 1:
				due.Doubled += n - 1
				due.Detail = append(due.Detail, fmt.Sprintf("visit %s: %d VisitDue rows (a customer called %d times)", pv.ID, n, n))
			}
			switch n := len(o.tasks[pv.ID]); {
			case n == 0:
				tasks.Lost++
				tasks.Detail = append(tasks.Detail, fmt.Sprintf("visit %s (policy %s, fired %s): no task", pv.ID, pv.PolicyID, fmtTime(pv.FiredAt)))
			case n > 1:
				tasks.Doubled += n - 1
				tasks.Detail = append(tasks.Detail, fmt.Sprintf("visit %s: %d tasks", pv.ID, n))
			}
			if !o.learned[pv.ID] {
				learned.Lost++
				learned.Detail = append(learned.Detail, fmt.Sprintf("visit %s (fired %s) unknown to feedback", pv.ID, fmtTime(pv.FiredAt)))
			}
		}
	}
	for id, n := range o.visitDue {
		if _, ok := visitByID[id]; !ok {
			due.Doubled += n
			due.Detail = append(due.Detail, fmt.Sprintf("VisitDue for visit %s that the scheduler never planned", id))
		}
	}
	isPoison := map[string]bool{}
	for _, p := range poisons {
		isPoison[p.VisitID] = true
	}
	for id, ts := range o.tasks {
		out.Tasks += len(ts)
		if _, ok := visitByID[id]; !ok {
			tasks.Doubled += len(ts)
			what := "a task for a visit the scheduler never planned"
			if isPoison[id] {
				what = "a task for the POISON visit (it must fail and be dead-lettered)"
			}
			tasks.Detail = append(tasks.Detail, fmt.Sprintf("%s: %q", what, id))
		}
	}
	if learned.Lost > 0 {
		learned.Detail = append(learned.Detail, o.unhandled["feedback-visit-due"]...)
	}
	for _, x := range []Violation{unfired, early, due, tasks, learned} {
		add(x)
	}

	// Agents: no task held by two agents at once; every phone task worked;
	// every SMS task sent once.
	held := Violation{Invariant: "dispatch: no task held by two agents at once"}
	byTask := map[string][]Claim{}
	var failedClaims []Claim
	for _, c := range crew {
		if c.TaskID == "" {
			failedClaims = append(failedClaims, c)
			continue
		}
		byTask[c.TaskID] = append(byTask[c.TaskID], c)
	}
	for id, cs := range byTask {
		sort.Slice(cs, func(i, j int) bool { return cs[i].At.Before(cs[j].At) })
		for i := 1; i < len(cs); i++ {
			prev, cur := cs[i-1], cs[i]
			if cur.At.Before(prev.Released()) {
				held.Doubled++
				held.Detail = append(held.Detail, fmt.Sprintf("task %s (visit %s): %s/%s from %s held it until %s, %s/%s claimed it at %s",
					id, cur.VisitID, prev.Tenant, prev.Agent, prev.Dispatch, prev.Released().Format("15:04:05.000"), cur.Tenant, cur.Agent, cur.At.Format("15:04:05.000")))
			}
		}
	}
	add(held)
	worked := Violation{Invariant: "dispatch/feedback: every phone task claimed, logged once and closed"}
	sms := Violation{Invariant: "dispatch: every SMS task sent exactly once"}
	for visitID, ts := range o.tasks {
		if isPoison[visitID] {
			continue
		}
		for _, t := range ts {
			switch t.Channel {
			case "CHANNEL_SMS", "CHANNEL_EMAIL":
				st := o.messages[t.ID]
				if t.Status != "sent" && t.Status != "delivered" {
					sms.Lost++
					sms.Detail = append(sms.Detail, fmt.Sprintf("task %s (visit %s, created %s) %s, message %q, lease until %s",
						t.ID, visitID, t.CreatedAt.Format("15:04:05.000"), t.Status, st, fmtTime(t.LeaseUntil)))
				}
			default:
				rec, ok := o.records[t.Tenant+"/"+visitID]
				if t.Status != "done" || !ok {
					worked.Lost++
					worked.Detail = append(worked.Detail, fmt.Sprintf("task %s (visit %s, created %s) %s, agent %q, record logged: %v",
						t.ID, visitID, t.CreatedAt.Format("15:04:05.000"), t.Status, t.Agent, ok))
					for _, c := range byTask[t.ID] {
						worked.Detail = append(worked.Detail, "  "+c.String())
					}
					if len(byTask[t.ID]) == 0 && t.Status == "claimed" {
						worked.Detail = append(worked.Detail, fmt.Sprintf("  no agent was ever handed this task: dispatch stored the claim for %q but its answer never reached the agent "+
							"(ClaimNextTask failed, the agent asked again and got another task); the task waits for its lease to run out at %s", t.Agent, fmtTime(t.LeaseUntil)))
						for _, c := range failedClaims {
							if c.Tenant == t.Tenant && c.Agent == t.Agent && !c.At.Before(t.CreatedAt.Add(-time.Second)) && c.At.Before(t.CreatedAt.Add(30*time.Second)) {
								worked.Detail = append(worked.Detail, fmt.Sprintf("  %s/%s at %s from %s: %s", c.Tenant, c.Agent, c.At.Format("15:04:05.000"), c.Dispatch, c.Err))
							}
						}
					}
				} else if rec.Overall != RatingOf(visitID) {
					worked.Detail = append(worked.Detail, fmt.Sprintf("visit %s recorded %s, the agent said %s", visitID, rec.Overall, RatingOf(visitID)))
				}
			}
		}
	}
	for id, n := range o.sentEvents {
		if n > 1 {
			sms.Doubled += n - 1
			sms.Detail = append(sms.Detail, fmt.Sprintf("task %s: %d VisitAttempted(SENT) events (the paused sender recorded its send over the one that took over?)", id, n))
		}
	}
	for key, n := range o.sentMessages {
		if n > 1 {
			sms.Doubled += n - 1
			sms.Detail = append(sms.Detail, fmt.Sprintf("message %s sent %d times", key, n))
		}
	}
	if worked.Lost > 0 {
		worked.Detail = append(worked.Detail, o.unhandled["feedback-visit-assigned"]...)
	}
	add(worked)
	add(sms)
	out.Records = len(o.records)
	out.SendsRetried = o.sendTries
	if sys != nil {
		for _, inst := range sys.InstancesOf("dispatch") {
			out.ProviderDuplicates += len(sys.LogLines(inst, "local sender: duplicate dropped"))
		}
	}

	// Outboxes drained: nothing unpublished, nothing set aside but the
	// oversized inputs' dead letters.
	ob := Violation{Invariant: "outbox: every row published (nothing unpublished, nothing quarantined but injected oversize)"}
	oversized := 0
	for _, e := range bad {
		if e.Kind == load.Oversized {
			oversized++
		}
	}
	quarantined := 0
	for _, s := range schemas {
		st := o.outboxes[s]
		if st.Unpublished > 0 {
			ob.Lost += st.Unpublished
			ob.Detail = append(ob.Detail, fmt.Sprintf("%s.outbox: %d rows unpublished, the oldest %s", s, st.Unpublished, st.Oldest))
		}
		quarantined += st.Quarantined
		ob.Detail = append(ob.Detail, st.QuarantinedRows...)
	}
	if quarantined <= oversized && len(ob.Detail) == quarantined && ob.Lost == 0 {
		ob.Detail = nil // only the expected oversize
	}
	add(ob)
	cs := Violation{Invariant: "NATS: every durable consumer drained"}
	for _, d := range slices.Sorted(maps.Keys(o.consumerState)) {
		cs.Detail = append(cs.Detail, d+": "+o.consumerState[d])
	}
	if len(cs.Detail) > 0 {
		if len(o.failures) == 0 {
			cs.Detail = append(cs.Detail, "no consumer counted a failure (inbox_failures is empty)")
		}
		cs.Detail = append(cs.Detail, o.failures...)
	}
	add(cs)

	// Analytics equals a recomputation from feedback's records.
	an := Violation{Invariant: "analytics: GetSatisfaction equals a recomputation from feedback.visit_records"}
	if o.satisfyErr != "" {
		an.Detail = append(an.Detail, "GetSatisfaction: "+o.satisfyErr)
	}
	for _, t := range sortedTenants() {
		var returned, sat, fair, unsat int64
		for _, r := range o.records {
			if r.Tenant != t || r.Overall == typesv1.Rating_RATING_UNSPECIFIED {
				continue
			}
			returned++
			switch r.Overall {
			case typesv1.Rating_RATING_SATISFIED:
				sat++
			case typesv1.Rating_RATING_FAIRLY_SATISFIED:
				fair++
			case typesv1.Rating_RATING_UNSATISFIED:
				unsat++
			}
		}
		got := o.satisfaction[t]
		if got == nil {
			continue
		}
		if got.GetReturned() != returned || got.GetSatisfied() != sat || got.GetFairlySatisfied() != fair || got.GetUnsatisfied() != unsat {
			d := int(got.GetReturned() - returned)
			if d < 0 {
				an.Lost -= d
			} else {
				an.Doubled += d
			}
			an.Detail = append(an.Detail, fmt.Sprintf("tenant %s: analytics returned/satisfied/fairly/unsatisfied %d/%d/%d/%d, feedback's records %d/%d/%d/%d",
				t, got.GetReturned(), got.GetSatisfied(), got.GetFairlySatisfied(), got.GetUnsatisfied(), returned, sat, fair, unsat))
		}
	}
	if len(an.Detail) > 0 {
		an.Detail = append(an.Detail, o.unhandled["analytics-events"]...)
	}
	add(an)

	// Dead letters equal the injected bad inputs.
	dl := Violation{Invariant: "dead letters: exactly the injected bad inputs (each once) and the poison (once per consumer it fails)"}
	badByPayload := map[string]load.Event{}
	for _, e := range bad {
		badByPayload[string(e.Payload)] = e
	}
	poisonByPayload := map[string]Poisoned{}
	for _, p := range poisons {
		poisonByPayload[string(p.Payload)] = p
	}
	seenBad := map[int]int{}
	seenPoison := map[string][]string{}
	badByEventID := map[string]load.Event{}
	for _, e := range bad {
		badByEventID[load.EventID(e)] = e
		badByEventID["ingress:"+e.Key()] = e
	}
	for _, d := range o.deadLetters {
		e, ok := badByPayload[string(d.Payload)]
		if !ok && d.Schema == "intake" {
			// A large payload is dead-lettered by reference: the rejected row names the event.
			e, ok = badByEventID[o.rejected[d.Schema+"/"+d.ID]]
		}
		if ok && d.Schema == "intake" {
			seenBad[e.Seq]++
			if e.Field != "" && d.Field != e.Field {
				dl.Detail = append(dl.Detail, fmt.Sprintf("%s dead-lettered naming field %q (want %q): %s", e.Describe(), d.Field, e.Field, d.Reason))
			}
			continue
		}
		if p, ok := poisonByPayload[string(d.Payload)]; ok {
			seenPoison[p.EventID] = append(seenPoison[p.EventID], d.Schema)
			if !strings.Contains(d.Reason, "gave up") && !strings.Contains(d.Reason, "tries") && !strings.Contains(d.Reason, "failures") {
				dl.Detail = append(dl.Detail, fmt.Sprintf("poison %s dead-lettered by %s with reason %q: not after repeated failures?", p.EventID, d.Schema, d.Reason))
			}
			continue
		}
		dl.Doubled++
		dl.Detail = append(dl.Detail, fmt.Sprintf("UNEXPECTED dead letter %s %s on %s (orig %s, %d bytes): %s", d.Schema, d.ID, d.Subject, d.OrigSubject, len(d.Payload), d.Reason))
	}
	for _, e := range bad {
		switch n := seenBad[e.Seq]; {
		case n == 0:
			dl.Lost++
			dl.Detail = append(dl.Detail, fmt.Sprintf("NOT dead-lettered: %s, %s", e.Describe(), at(e.Seq)))
		case n > 1:
			dl.Doubled += n - 1
			dl.Detail = append(dl.Detail, fmt.Sprintf("dead-lettered %d times: %s", n, e.Describe()))
		}
	}
	for _, p := range poisons {
		got := seenPoison[p.EventID]
		if len(got) == 0 {
			dl.Lost++
			dl.Detail = append(dl.Detail, fmt.Sprintf("poison %s (published %s) reached no dead-letter subject", p.EventID, p.At.Format("15:04:05.000")))
		}
		seen := map[string]int{}
		for _, s := range got {
			seen[s]++
		}
		for s, n := range seen {
			if n > 1 {
				dl.Doubled += n - 1
				dl.Detail = append(dl.Detail, fmt.Sprintf("poison %s dead-lettered %d times by %s", p.EventID, n, s))
			}
		}
	}
	if o.dlqStreamErr != "" {
		dl.Detail = append(dl.Detail, "reading HUIFANG_DLQ: "+o.dlqStreamErr)
	} else if len(o.dlqStream) > 0 || len(o.deadLetters) > 0 {
		wiped := false
		for _, f := range faults {
			wiped = wiped || f.Kind == WipeNATS
		}
		for _, d := range o.deadLetters {
			if d.Published && !wiped && o.dlqStream[d.ID] == 0 {
				dl.Detail = append(dl.Detail, fmt.Sprintf("dead letter %s of %s marked published but not on HUIFANG_DLQ", d.ID, d.Schema))
			}
		}
	}
	add(dl)
	return out
}

// during names the fault under way at t, if any.
// withWipedStore reports whether an ingress event published at t and
// acknowledged with streamSeq lived only in the store of the first
// single-server wipe after t: JetStream acknowledged it after the last
// sequence intake had acknowledged before that kill.
func withWipedStore(t time.Time, streamSeq uint64, faults []Injected) bool {
	for _, f := range faults {
		if f.Kind != WipeNATS || !t.Before(f.Start) {
			continue
		}
		return f.IngressFloor > 0 && streamSeq > f.IngressFloor
	}
	return false
}

func during(t time.Time, faults []Injected) string {
	for _, f := range faults {
		end := f.End
		if end.IsZero() || end.Before(f.Start.Add(time.Second)) {
			end = f.Start.Add(time.Second)
		}
		if !t.Before(f.Start.Add(-time.Second)) && t.Before(end.Add(2*time.Second)) {
			return " during/near " + f.Fault.String()
		}
	}
	return ""
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Format("15:04:05.000")
}
