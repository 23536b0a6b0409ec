package e2e

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"
	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/pkg/stream"
)

// TestCallersAreChecked drives the services as outsiders and as the demo
// tenant's people would, through gRPC and the webhook: without a token
// nothing answers but health; a caller acts only as itself and only in its
// tenant; the token, not the request, says who acts.
func TestCallersAreChecked(t *testing.T) {
	s := setup(t, nil)
	s.prepare()
	ctx := t.Context()
	as := func(tok issuer.Token) context.Context {
		c, err := s.issuer.Context(ctx, tok)
		require.NoError(t, err)
		return c
	}
	code := func(err error) codes.Code { return status.Code(err) }
	bare := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer ") // a header the staff option leaves alone

	// Without a token: Unauthenticated on every service, and nothing changed.
	_, err := s.intake.GetCustomer(bare, &intakev1.GetCustomerRequest{Phone: "+8613800138000"})
	require.Equal(t, codes.Unauthenticated, code(err), "%v", err)
	_, err = s.scheduler.CreatePolicy(bare, &schedulerv1.CreatePolicyRequest{Policy: &schedulerv1.Policy{Name: "p"}})
	require.Equal(t, codes.Unauthenticated, code(err), "%v", err)
	_, err = s.dispatch.UpsertAgent(bare, &dispatchv1.UpsertAgentRequest{Agent: &dispatchv1.Agent{Id: "boss", Role: dispatchv1.Role_ROLE_DIRECTOR}})
	require.Equal(t, codes.Unauthenticated, code(err), "%v", err)
	_, err = s.feedback.ListComplaints(bare, &feedbackv1.ListComplaintsRequest{})
	require.Equal(t, codes.Unauthenticated, code(err), "%v", err)
	_, err = s.analytics.Rebuild(bare, &analyticsv1.RebuildRequest{})
	require.Equal(t, codes.Unauthenticated, code(err), "%v", err)

	agentA1 := issuer.Token{Subject: "li-na", Claims: auth.Claims{Tenant: tenant, Roles: []string{"agent"}, AgentID: agent}}
	// An agent may not make itself a director, nor claim as another agent,
	// nor read another tenant, nor rebuild.
	_, err = s.dispatch.UpsertAgent(as(agentA1), &dispatchv1.UpsertAgentRequest{Agent: &dispatchv1.Agent{Id: agent, Role: dispatchv1.Role_ROLE_DIRECTOR}})
	require.Equal(t, codes.PermissionDenied, code(err), "%v", err)
	_, err = s.dispatch.ClaimNextTask(as(agentA1), &dispatchv1.ClaimNextTaskRequest{AgentId: "a-2"})
	require.Equal(t, codes.PermissionDenied, code(err), "%v", err)
	require.Contains(t, err.Error(), "agent_id")
	_, err = s.dispatch.ListTasks(as(agentA1), &dispatchv1.ListTasksRequest{TenantId: "acme"})
	require.Equal(t, codes.PermissionDenied, code(err), "%v", err)
	_, err = s.analytics.Rebuild(as(issuer.Staff(tenant, "d-1")), &analyticsv1.RebuildRequest{})
	require.Equal(t, codes.PermissionDenied, code(err), "staff of a tenant do not rebuild every tenant: %v", err)
	// A tenant admin may not write a policy for every tenant.
	_, err = s.scheduler.CreatePolicy(as(issuer.Staff(tenant, "adm")), &schedulerv1.CreatePolicyRequest{Policy: &schedulerv1.Policy{TenantId: "*", Name: "everyone"}})
	require.Equal(t, codes.PermissionDenied, code(err), "%v", err)

	// The webhook: 401 without a token, 403 for another source system.
	post := func(token, body string) int {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.st.HTTPAddr("intake")+"/v1/services", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	body := ingress("w-1", "repair", "c-1", "王芳", "+8613800138000", time.Now().Add(-time.Minute))
	require.Equal(t, http.StatusUnauthorized, post("", body))
	other, err := s.issuer.Mint(issuer.Integrator(tenant, "erp-other"))
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, post(other, body))
	erp, err := s.issuer.Mint(issuer.Integrator(tenant, "erp-demo"))
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, post(erp, body))

	// The agent's own token claims the task without naming itself: the
	// token says who claims, and records the visit as the agent.
	task := waitFor(t, taskDeadline, "a task for the agent of the token", func() (*dispatchv1.Task, bool, error) {
		resp, err := s.dispatch.ClaimNextTask(as(agentA1), &dispatchv1.ClaimNextTaskRequest{})
		return resp.GetTask(), err == nil && resp.GetTask() != nil, err
	})
	require.Equal(t, agent, task.GetAgentId())
	rec := waitFor(t, taskDeadline, "the visit logged as the agent", func() (*feedbackv1.VisitRecord, bool, error) {
		resp, err := s.feedback.LogVisit(as(agentA1), &feedbackv1.LogVisitRequest{VisitId: task.GetVisitId(),
			Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}}})
		return resp.GetRecord(), err == nil, err
	})
	require.Equal(t, agent, rec.GetAgentId())
	// Scope beyond the table: another agent reads neither the task's
	// messages nor, as any agent, intake's customer archive; a leader signs
	// only the records of its org units.
	a2 := issuer.Token{Subject: "zhou", Claims: auth.Claims{Tenant: tenant, Roles: []string{"agent"}, AgentID: "a-2"}}
	_, err = s.dispatch.ListMessages(as(a2), &dispatchv1.ListMessagesRequest{TaskId: task.GetId()})
	require.Equal(t, codes.PermissionDenied, code(err), "%v", err)
	_, err = s.intake.GetCustomer(as(agentA1), &intakev1.GetCustomerRequest{Id: task.GetCustomer().GetId()})
	require.Equal(t, codes.PermissionDenied, code(err), "%v", err)
	south := issuer.Token{Subject: "sun", Claims: auth.Claims{Tenant: tenant, Roles: []string{"leader"}, AgentID: "l-9", OrgUnits: []string{"south"}}}
	_, err = s.feedback.SignOffVisitRecord(as(south), &feedbackv1.SignOffVisitRecordRequest{RecordId: rec.GetId(), Approved: true})
	require.Equal(t, codes.PermissionDenied, code(err), "%v", err)
	// A leader signs off as itself only.
	leader := issuer.Token{Subject: "wang-lei", Claims: auth.Claims{Tenant: tenant, Roles: []string{"leader"}, AgentID: "l-1"}}
	_, err = s.feedback.SignOffVisitRecord(as(leader), &feedbackv1.SignOffVisitRecordRequest{RecordId: rec.GetId(), LeaderId: "l-2", Approved: true})
	require.Equal(t, codes.PermissionDenied, code(err), "%v", err)
}

// TestServicesWithTheirOwnNATSUsers runs a follow-up cycle with NATS taking
// only Huifang's users: each service publishes with its own user's
// permissions (pkg/stream), the upstream system as the integrator erp.
func TestServicesWithTheirOwnNATSUsers(t *testing.T) {
	s := setupWith(t, topology{natsUsers: true})
	s.prepare()
	u, err := url.Parse(s.natsURL)
	require.NoError(t, err)
	u.User = url.UserPassword("erp", "erp")
	nc, err := nats.Connect(u.String())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	erp, err := jetstream.New(nc)
	require.NoError(t, err)
	msg := &nats.Msg{Subject: stream.SubjectIngressServiceCompleted, Header: nats.Header{},
		Data: []byte(ingress("n-1", "repair", "c-1", "王芳", "+8613800138000", time.Now().Add(-time.Minute)))}
	msg.Header.Set(stream.HeaderContentType, stream.ContentTypeJSON)
	_, err = erp.PublishMsg(t.Context(), msg)
	require.NoError(t, err)

	task := s.claim()
	s.logVisit(&feedbackv1.LogVisitRequest{TenantId: tenant, VisitId: task.GetVisitId(), AgentId: agent,
		Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}}})
	waitFor(t, taskDeadline, "analytics to count the visit", func() (*analyticsv1.GetSatisfactionResponse, bool, error) {
		resp, err := s.analytics.GetSatisfaction(t.Context(), &analyticsv1.GetSatisfactionRequest{TenantId: tenant, Aspect: "overall"})
		return resp, err == nil && resp.GetReturned() == 1, err
	})
	s.drained()
}
