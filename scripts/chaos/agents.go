package chaos

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

// Claim is one task an agent was handed, or (TaskID empty) a ClaimNextTask that failed.
type Claim struct {
	Tenant, Agent, TaskID, VisitID string
	// Dispatch is the instance that handed it out.
	Dispatch string
	// At is when ClaimNextTask answered; LeaseUntil the lease it gave, and
	// LeaseToken the claim's fencing token.
	At, LeaseUntil time.Time
	LeaseToken     int64
	// Logged is when LogVisit succeeded; Done when RecordAttempt closed the task.
	Logged, Done time.Time
	Rating       typesv1.Rating
	// Err is the last error that stopped the agent working this task.
	Err string
}

func (c Claim) String() string {
	s := fmt.Sprintf("claimed by %s/%s from %s at %s, lease until %s", c.Tenant, c.Agent, c.Dispatch, c.At.Format("15:04:05.000"), c.LeaseUntil.Format("15:04:05.000"))
	if !c.Logged.IsZero() {
		s += ", logged " + c.Logged.Format("15:04:05.000")
	}
	if !c.Done.IsZero() {
		s += ", closed " + c.Done.Format("15:04:05.000")
	}
	if c.Err != "" {
		s += ", agent stopped: " + c.Err
	}
	return s
}

// Released is when the agent stopped holding the task: when it recorded
// the attempt, else when its lease ran out.
func (c Claim) Released() time.Time {
	if !c.Done.IsZero() {
		return c.Done
	}
	return c.LeaseUntil
}

// Crew is the agents of every tenant at work: each claims the next task
// (long-poll), logs the visit with feedback, and records the answered call
// with dispatch, retrying each step while a service is away.
type Crew struct {
	sys *System

	mu     sync.Mutex
	claims []Claim
	errs   map[string]int
}

// StartCrew starts the agents; they work until ctx ends.
func StartCrew(ctx context.Context, sys *System) (*Crew, func()) {
	c := &Crew{sys: sys, errs: map[string]int{}}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	dispatchers := sys.InstancesOf("dispatch")
	i := 0
	for _, tenant := range sortedTenants() {
		for _, agent := range Agents {
			first := i
			i++
			wg.Go(func() { c.work(ctx, tenant, agent, dispatchers, first) })
		}
	}
	return c, func() { cancel(); wg.Wait() }
}

// Claims returns every claim so far.
func (c *Crew) Claims() []Claim {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Claim(nil), c.claims...)
}

// Errors counts the errors the agents met, by call and code.
func (c *Crew) Errors() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.errs {
		out[k] = v
	}
	return out
}

func (c *Crew) countErr(call string, err error) {
	c.mu.Lock()
	c.errs[call+" "+status.Code(err).String()]++
	c.mu.Unlock()
}

// RatingOf is the answer a visit gets: the same for a visit in every run.
func RatingOf(visitID string) typesv1.Rating {
	h := fnv.New32a()
	_, _ = h.Write([]byte(visitID))
	switch n := h.Sum32() % 10; {
	case n < 7:
		return typesv1.Rating_RATING_SATISFIED
	case n < 9:
		return typesv1.Rating_RATING_FAIRLY_SATISFIED
	default:
		return typesv1.Rating_RATING_UNSATISFIED
	}
}

func (c *Crew) work(ctx context.Context, tenant, agent string, dispatchers []string, next int) {
	// A claim's request id is kept while the call fails (on any replica) so
	// that a claim whose answer was lost is answered again rather than
	// orphaned; a new one after every answer.
	claims := 0
	requestID := func() string { return fmt.Sprintf("%s/%s/%d", tenant, agent, claims) }
	for ctx.Err() == nil {
		inst := dispatchers[next%len(dispatchers)]
		d := dispatchv1.NewDispatchServiceClient(c.sys.Conn(inst))
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := d.ClaimNextTask(cctx, &dispatchv1.ClaimNextTaskRequest{TenantId: tenant, AgentId: agent, Wait: durationpb.New(time.Second),
			RequestId: requestID()})
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				c.countErr("ClaimNextTask", err)
				c.mu.Lock()
				if len(c.claims) < 100000 {
					// A failed claim, kept to explain a task dispatch handed out that no agent received.
					c.claims = append(c.claims, Claim{Tenant: tenant, Agent: agent, Dispatch: inst, At: time.Now(), Err: "ClaimNextTask: " + err.Error()})
				}
				c.mu.Unlock()
				next++ // another replica, if there is one
				sleep(ctx, 200*time.Millisecond)
			}
			continue
		}
		claims++
		t := resp.GetTask()
		if t == nil {
			continue
		}
		cl := Claim{Tenant: tenant, Agent: agent, TaskID: t.GetId(), VisitID: t.GetVisitId(), Dispatch: inst, At: time.Now(),
			LeaseUntil: t.GetLeaseExpiresAt().AsTime(), LeaseToken: t.GetLeaseToken(), Rating: RatingOf(t.GetVisitId())}
		c.mu.Lock()
		c.claims = append(c.claims, cl)
		idx := len(c.claims) - 1
		c.mu.Unlock()
		cl = c.finish(ctx, cl, d)
		c.mu.Lock()
		c.claims[idx] = cl
		c.mu.Unlock()
	}
}

// finish logs the visit and records the answered call, retrying while a
// service is away, for as long as the lease lasts (and a minute more).
func (c *Crew) finish(ctx context.Context, cl Claim, d dispatchv1.DispatchServiceClient) Claim {
	fb := c.sys.Feedback()
	until := cl.LeaseUntil.Add(time.Minute)
	for ctx.Err() == nil && time.Now().Before(until) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := fb.LogVisit(cctx, &feedbackv1.LogVisitRequest{TenantId: cl.Tenant, VisitId: cl.VisitID, AgentId: cl.Agent,
			Answers: []*typesv1.Answer{{Aspect: "overall", Rating: cl.Rating}}})
		cancel()
		if err == nil {
			cl.Logged = time.Now()
			break
		}
		c.countErr("LogVisit", err)
		cl.Err = "LogVisit: " + err.Error()
		if status.Code(err) == codes.AlreadyExists {
			// Logged already (this agent's earlier try whose answer was
			// lost, or an agent that held the task before): close the call.
			cl.Logged = time.Now()
			break
		}
		if c := status.Code(err); c == codes.InvalidArgument || c == codes.PermissionDenied {
			return cl
		}
		sleep(ctx, 300*time.Millisecond)
	}
	if cl.Logged.IsZero() {
		cl.Err += " (last error; still retrying when the run ended)"
		return cl
	}
	cl.Err = ""
	for ctx.Err() == nil && time.Now().Before(until) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := d.RecordAttempt(cctx, &dispatchv1.RecordAttemptRequest{TenantId: cl.Tenant, TaskId: cl.TaskID, AgentId: cl.Agent,
			LeaseToken: cl.LeaseToken, Disposition: typesv1.Disposition_DISPOSITION_ANSWERED})
		cancel()
		if err == nil {
			cl.Done = time.Now()
			return cl
		}
		c.countErr("RecordAttempt", err)
		cl.Err = "RecordAttempt: " + err.Error()
		switch status.Code(err) {
		case codes.InvalidArgument, codes.FailedPrecondition, codes.NotFound, codes.PermissionDenied:
			return cl
		}
		sleep(ctx, 300*time.Millisecond)
	}
	cl.Err += " (last error; still retrying when the run ended)"
	return cl
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
