package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/scripts/internal/load"
)

// world is a small, consistent run: three valid events (one resent), one
// malformed; each valid event stored, scheduled, fired once, tasked,
// claimed, logged and counted; the malformed one dead-lettered once.
func world(t *testing.T) (*load.Result, []Claim, *observed) {
	t.Helper()
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	events := load.Plan(load.Config{Seed: 3, Events: 40, Tenants: map[string][]string{"default": {"north"}},
		ServiceTypes: []string{"repair"}, ResendRate: 0.1, MalformedRate: 0.1, Now: now})
	res := &load.Result{Events: events, Publish: make([]load.Publish, len(events)), Start: now}
	o := &observed{services: map[string][]string{}, serviceKey: map[string]string{}, scheduled: map[string]bool{},
		visitDue: map[string]int{}, tasks: map[string][]task{}, learned: map[string]bool{}, records: map[string]record{},
		outboxes: map[string]outboxState{}, dlqStream: map[string]int{}, messages: map[string]string{}, sentMessages: map[string]int{},
		satisfaction: map[string]*analyticsv1.GetSatisfactionResponse{}, consumerState: map[string]string{}}
	var crew []Claim
	sat := &analyticsv1.GetSatisfactionResponse{}
	for i, e := range events {
		res.Publish[i] = load.Publish{Seq: i, At: time.Duration(i) * 100 * time.Millisecond, Acked: true}
		switch e.Kind {
		case load.Valid:
			id, visit := "svc-"+e.SourceEventID, "visit-"+e.SourceEventID
			o.services[e.Key()] = []string{id}
			o.serviceKey[id] = e.Key()
			o.scheduled[id] = true
			due := now.Add(res.Publish[i].At)
			fired := due.Add(200 * time.Millisecond)
			o.visits = append(o.visits, plannedVisit{ID: visit, Tenant: e.Tenant, ServiceID: id, PolicyID: "p", Status: "due", DueAt: due, FiredAt: &fired})
			o.visitDue[visit] = 1
			o.tasks[visit] = []task{{ID: "task-" + visit, Tenant: e.Tenant, VisitID: visit, Status: "done", Channel: "CHANNEL_PHONE", Agent: "agent-1", CreatedAt: fired}}
			o.learned[visit] = true
			rating := RatingOf(visit)
			o.records[e.Tenant+"/"+visit] = record{Tenant: e.Tenant, VisitID: visit, Agent: "agent-1", Overall: rating}
			crew = append(crew, Claim{Tenant: e.Tenant, Agent: "agent-1", TaskID: "task-" + visit, VisitID: visit, At: fired, LeaseUntil: fired.Add(15 * time.Minute), Done: fired.Add(time.Second)})
			sat.Returned++
			switch rating {
			case typesv1.Rating_RATING_SATISFIED:
				sat.Satisfied++
			case typesv1.Rating_RATING_FAIRLY_SATISFIED:
				sat.FairlySatisfied++
			default:
				sat.Unsatisfied++
			}
		case load.Malformed:
			o.deadLetters = append(o.deadLetters, deadLetter{Schema: "intake", ID: "dl-" + e.SourceEventID, Subject: "huifang.deadletter.intake",
				Field: e.Field, Payload: e.Payload, Published: true})
			o.dlqStream["dl-"+e.SourceEventID] = 1
		}
	}
	o.satisfaction["default"] = sat
	o.satisfaction["acme"] = &analyticsv1.GetSatisfactionResponse{}
	return res, crew, o
}

func invariants(out Outcome) []string {
	var names []string
	for _, v := range out.Violations {
		names = append(names, v.Invariant)
	}
	return names
}

// TestCheckFindsEachBrokenInvariant: the consistent world passes; each
// change that loses or doubles an effect fails the invariant it breaks, and
// says which event or visit.
func TestCheckFindsEachBrokenInvariant(t *testing.T) {
	res, crew, o := world(t)
	after := res.Start.Add(time.Hour)
	ok := check(nil, res, crew, nil, nil, o, after)
	require.Empty(t, ok.Violations, "the consistent world passes:\n%v", ok.Violations)
	require.Positive(t, ok.AckedValid)
	require.Positive(t, ok.Resends, "the plan has resends")
	require.Positive(t, ok.BadInputs, "the plan has malformed inputs")

	firstValid := func(res *load.Result) load.Event {
		for _, e := range res.Events {
			if e.Kind == load.Valid {
				return e
			}
		}
		t.Fatal("no valid event")
		return load.Event{}
	}
	tests := []struct {
		name, invariant string
		lost, doubled   int
		mention         string
		breakIt         func(res *load.Result, crew *[]Claim, o *observed)
	}{
		{"an acknowledged event without a service", "intake: exactly one service record", 1, 0, "LOST", func(res *load.Result, _ *[]Claim, o *observed) {
			e := firstValid(res)
			delete(o.services, e.Key())
		}},
		{"an event stored twice", "intake: exactly one service record", 0, 1, "DOUBLED", func(res *load.Result, _ *[]Claim, o *observed) {
			e := firstValid(res)
			o.services[e.Key()] = append(o.services[e.Key()], "svc-again")
		}},
		{"a ServiceCompleted never consumed", "scheduler: every intake service", 1, 0, "no scheduler.services row", func(res *load.Result, _ *[]Claim, o *observed) {
			delete(o.scheduled, "svc-"+firstValid(res).SourceEventID)
		}},
		{"a visit fired twice", "exactly one VisitDue", 0, 1, "called 2 times", func(res *load.Result, _ *[]Claim, o *observed) {
			o.visitDue["visit-"+firstValid(res).SourceEventID] = 2
		}},
		{"a visit due but never fired", "every visit that fell due fired", 1, 0, "still planned", func(res *load.Result, _ *[]Claim, o *observed) {
			o.visits[0].Status, o.visits[0].FiredAt = "planned", nil
		}},
		{"a visit fired early", "no visit fired before its due time", 0, 1, "fired", func(res *load.Result, _ *[]Claim, o *observed) {
			early := o.visits[0].DueAt.Add(-time.Second)
			o.visits[0].FiredAt = &early
		}},
		{"a fired visit without a task", "exactly one task per fired visit", 1, 0, "no task", func(res *load.Result, _ *[]Claim, o *observed) {
			delete(o.tasks, o.visits[0].ID)
		}},
		{"a task held by two agents", "no task held by two agents at once", 0, 1, "agent-2", func(res *load.Result, crew *[]Claim, o *observed) {
			c := (*crew)[0]
			c.Agent, c.At = "agent-2", c.At.Add(100*time.Millisecond)
			*crew = append(*crew, c)
		}},
		{"analytics counting a questionnaire twice", "analytics: GetSatisfaction", 0, 1, "tenant default", func(res *load.Result, _ *[]Claim, o *observed) {
			o.satisfaction["default"].Returned++
			o.satisfaction["default"].Satisfied++
		}},
		{"an outbox row left behind", "outbox: every row published", 3, 0, "intake.outbox: 3 rows unpublished", func(res *load.Result, _ *[]Claim, o *observed) {
			o.outboxes["intake"] = outboxState{Unpublished: 3, Oldest: "seq 9 huifang.events.service.completed"}
		}},
		{"a malformed input never dead-lettered", "dead letters", 1, 0, "NOT dead-lettered", func(res *load.Result, _ *[]Claim, o *observed) {
			o.deadLetters = o.deadLetters[1:]
		}},
		{"a valid event dead-lettered", "dead letters", 0, 1, "UNEXPECTED dead letter", func(res *load.Result, _ *[]Claim, o *observed) {
			o.deadLetters = append(o.deadLetters, deadLetter{Schema: "scheduler", ID: "x", Subject: "huifang.deadletter.scheduler", Payload: []byte("x"), Reason: "gave up"})
		}},
		{"a consumer left with messages", "every durable consumer drained", 0, 0, "dispatch-visit-due", func(res *load.Result, _ *[]Claim, o *observed) {
			o.consumerState["dispatch-visit-due"] = "3 pending"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, crew, o := world(t)
			tt.breakIt(res, &crew, o)
			out := check(nil, res, crew, nil, nil, o, after)
			require.Len(t, out.Violations, 1, "one invariant broken: %v", invariants(out))
			v := out.Violations[0]
			require.Contains(t, v.Invariant, tt.invariant)
			require.Equal(t, tt.lost, v.Lost, "lost")
			require.Equal(t, tt.doubled, v.Doubled, "doubled")
			require.True(t, strings.Contains(v.String(), tt.mention), "the message names what broke: %s", v)
		})
	}
}

// An acknowledged ingress event missing after a single server's wipe is
// put apart only when the wiped store alone held it: published before the
// first wipe after it, acknowledged past the sequence intake had taken.
func TestWithWipedStore(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	faults := []Injected{
		{Fault: Fault{Kind: KillNATS}, Start: t0.Add(5 * time.Second)},
		{Fault: Fault{Kind: WipeNATS}, Start: t0.Add(10 * time.Second), IngressFloor: 300},
		{Fault: Fault{Kind: WipeNATS}, Start: t0.Add(20 * time.Second), IngressFloor: 50},
	}
	require.True(t, withWipedStore(t0.Add(9*time.Second), 301, faults), "after the floor, before the kill")
	require.False(t, withWipedStore(t0.Add(9*time.Second), 300, faults), "intake had taken it: missing is lost")
	require.False(t, withWipedStore(t0.Add(3*time.Second), 250, faults), "older than the floor of the next wipe")
	require.True(t, withWipedStore(t0.Add(15*time.Second), 60, faults), "the second store, its own floor")
	require.False(t, withWipedStore(t0.Add(15*time.Second), 40, faults))
	require.False(t, withWipedStore(t0.Add(25*time.Second), 900, faults), "after every wipe: missing is lost")
	faults[1].IngressFloor = 0
	require.False(t, withWipedStore(t0.Add(9*time.Second), 301, faults), "floor unknown: counted as lost")
}
