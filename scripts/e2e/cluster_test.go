package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"
	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/scripts/internal/stack"
)

// TestMultiReplicaCluster runs the topology of deploy/compose from the built
// binaries: a three-node NATS JetStream cluster on loopback ports with R3
// streams, two scheduler and two dispatch replicas, one of each other
// service. It drives the follow-up cycle through both replicas, then stops
// one scheduler, one dispatch replica and one NATS node with SIGTERM (a
// rolling upgrade, a lost broker) and drives it again. No visit fires twice,
// no task is handed out twice, and analytics counts every questionnaire once
// (seed 003: rate = (satisfied + fairly satisfied) / returned).
func TestMultiReplicaCluster(t *testing.T) {
	var cl *stack.NATSCluster
	s := setupWith(t, topology{cluster: 3, replicas: map[string]int{"scheduler": 2, "dispatch": 2}, cl: &cl})
	ctx := t.Context()

	for _, name := range []string{stream.IngressStream, stream.EventsStream, stream.DLQStream} {
		str, err := s.js.Stream(ctx, name)
		require.NoError(t, err)
		info := str.CachedInfo()
		require.Equal(t, 3, info.Config.Replicas, "stream %s is R3", name)
		require.NotNil(t, info.Cluster)
		require.Len(t, info.Cluster.Replicas, 2, "stream %s has a leader and two followers", name)
	}

	s.prepare()
	scheduler2 := schedulerv1.NewSchedulerServiceClient(s.conn("scheduler-2"))
	dispatch2 := dispatchv1.NewDispatchServiceClient(s.conn("dispatch-2"))
	policies, err := scheduler2.ListPolicies(ctx, &schedulerv1.ListPoliciesRequest{TenantId: tenant})
	require.NoError(t, err)
	require.Contains(t, policyNames(policies.GetPolicies()), "instant", "both scheduler replicas serve one set of policies")

	claimed := map[string]bool{}
	round := func(name string, from, to int, dispatchers ...dispatchv1.DispatchServiceClient) {
		t.Helper()
		for i := from; i < to; i++ {
			s.publish(ingress(fmt.Sprintf("multi-%d", i), "repair", fmt.Sprintf("cm-%d", i), "客户", "+8613800138000", time.Now()))
		}
		want := len(claimed) + to - from
		waitFor(t, 40*time.Second, fmt.Sprintf("%s: %d tasks claimed and logged", name, want), func() (bool, bool, error) {
			for _, d := range dispatchers {
				resp, err := d.ClaimNextTask(ctx, &dispatchv1.ClaimNextTaskRequest{TenantId: tenant, AgentId: agent})
				if err != nil {
					return false, false, err
				}
				task := resp.GetTask()
				if task == nil {
					continue
				}
				require.False(t, claimed[task.GetVisitId()], "visit %s handed out twice", task.GetVisitId())
				claimed[task.GetVisitId()] = true
				s.logVisit(&feedbackv1.LogVisitRequest{
					TenantId: tenant, VisitId: task.GetVisitId(), AgentId: agent,
					Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}},
				})
			}
			return len(claimed) == want, len(claimed) == want, nil
		})
	}

	round("both replicas", 0, 6, s.dispatch, dispatch2)

	// A rolling upgrade takes one replica of each away; a NATS node goes down
	// (not the one this test's connection uses, which would only add a
	// reconnect to the test's own waits).
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, s.st.Stop(stopCtx, "scheduler"), "scheduler drains and exits cleanly on SIGTERM")
	require.NoError(t, s.st.Stop(stopCtx, "dispatch"), "dispatch drains and exits cleanly on SIGTERM")
	stopOneNATSNode(t, s, cl)

	round("one replica each, two NATS nodes", 6, 12, dispatch2)

	due := map[string]int{}
	for _, m := range s.messages(stream.EventsStream, stream.SubjectVisitDue) {
		ev := &eventsv1.VisitDue{}
		require.NoError(t, proto.Unmarshal(m.Data(), ev))
		due[ev.GetVisitId()]++
	}
	for visit := range claimed {
		require.Equal(t, 1, due[visit], "visit %s fired exactly once by the two schedulers", visit)
	}
	sat := waitFor(t, taskDeadline, "analytics to count 12 questionnaires", func() (*analyticsv1.GetSatisfactionResponse, bool, error) {
		resp, err := s.analytics.GetSatisfaction(ctx, &analyticsv1.GetSatisfactionRequest{TenantId: tenant, Aspect: "overall"})
		return resp, err == nil && resp.GetReturned() >= 12, err
	})
	require.EqualValues(t, 12, sat.GetReturned(), "each questionnaire counted once")
	require.EqualValues(t, 12, sat.GetSatisfied())
	require.InDelta(t, 1.0, sat.GetRate(), 1e-9)
}

func policyNames(ps []*schedulerv1.Policy) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.GetName())
	}
	return out
}

// stopOneNATSNode stops a node other than the one the test is connected to
// and waits until the streams have a leader among the other two.
func stopOneNATSNode(t *testing.T, s *system, cl *stack.NATSCluster) {
	t.Helper()
	used := s.js.Conn().ConnectedUrl()
	for _, n := range cl.Nodes {
		if n.URL != used {
			n.Stop()
			break
		}
	}
	waitFor(t, 30*time.Second, "stream leaders on the remaining nodes", func() (bool, bool, error) {
		for _, name := range []string{stream.IngressStream, stream.EventsStream} {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			str, err := s.js.Stream(ctx, name)
			cancel()
			if err != nil {
				return false, false, err
			}
			if c := str.CachedInfo().Cluster; c == nil || c.Leader == "" {
				return false, false, fmt.Errorf("stream %s has no leader", name)
			}
		}
		return true, true, nil
	})
}
