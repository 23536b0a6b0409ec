package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/issuer"
)

// TestLedgerSearchAndTimeline: a call-center agent's first two calls on
// the five services: a customer reported through the NATS ingress is found
// by the last digits of its phone and by its surname, masked; after a call
// attempt and a logged visit, its timeline (intake's contact ledger, fed by
// the scheduler's, dispatch's and feedback's events through the durable
// intake-ledger) shows the service, the planned and due visit, the claim,
// the attempt and the record in time order, page by page. An agent of
// another org unit is refused; no table or log holds the clear contact.
func TestLedgerSearchAndTimeline(t *testing.T) {
	s := setup(t, nil)
	s.prepare()
	completed := time.Now().UTC().Truncate(time.Second)
	s.publish(ingress("e-1", "repair", "c-1", "王芳", "+8613800138000", completed))
	task := s.claim()

	found := ledgerSearch(t, s, &intakev1.SearchCustomersRequest{Phone: "8000"})
	require.Len(t, found, 1)
	customer := found[0].GetCustomer()
	require.Equal(t, "c-1", customer.GetExternalId())
	require.Equal(t, "王*", customer.GetNameMasked())
	require.Empty(t, customer.GetName()+customer.GetPhone())
	require.Equal(t, customer.GetId(), ledgerSearch(t, s, &intakev1.SearchCustomersRequest{Name: "王", Phone: "138 0013 8000"})[0].GetCustomer().GetId())
	require.Empty(t, ledgerSearch(t, s, &intakev1.SearchCustomersRequest{Name: "芳"}), "a given name alone matches nothing")
	_, err := s.intake.SearchCustomers(t.Context(), &intakev1.SearchCustomersRequest{Phone: "800"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))

	asAgent, err := s.issuer.Context(t.Context(), issuer.Staff(tenant, agent))
	require.NoError(t, err)
	_, err = s.dispatch.RecordAttempt(asAgent, &dispatchv1.RecordAttemptRequest{TenantId: tenant, TaskId: task.GetId(),
		LeaseToken: task.GetLeaseToken(), Disposition: typesv1.Disposition_DISPOSITION_ANSWERED})
	require.NoError(t, err)
	s.logVisit(&feedbackv1.LogVisitRequest{TenantId: tenant, VisitId: task.GetVisitId(), AgentId: agent,
		Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}}})

	want := []intakev1.TimelineEntryKind{intakev1.TimelineEntryKind_TIMELINE_ENTRY_KIND_SERVICE,
		intakev1.TimelineEntryKind_TIMELINE_ENTRY_KIND_VISIT_PLANNED, intakev1.TimelineEntryKind_TIMELINE_ENTRY_KIND_VISIT_DUE,
		intakev1.TimelineEntryKind_TIMELINE_ENTRY_KIND_VISIT_ASSIGNED, intakev1.TimelineEntryKind_TIMELINE_ENTRY_KIND_ATTEMPT,
		intakev1.TimelineEntryKind_TIMELINE_ENTRY_KIND_VISIT_LOGGED}
	entries := waitFor(t, taskDeadline, "the timeline to show the call", func() ([]*intakev1.TimelineEntry, bool, error) {
		es, err := ledgerTimeline(t.Context(), s, customer.GetId(), 2)
		if err != nil {
			return nil, false, err
		}
		kinds := map[intakev1.TimelineEntryKind]bool{}
		for _, e := range es {
			kinds[e.GetKind()] = true
		}
		return es, len(kinds) == len(want), nil
	})
	var kinds []intakev1.TimelineEntryKind
	for i, e := range entries {
		kinds = append(kinds, e.GetKind())
		require.Equal(t, customer.GetId(), e.GetCustomerId())
		if i > 0 {
			require.False(t, e.GetAt().AsTime().Before(entries[i-1].GetAt().AsTime()), "time order")
		}
		if e.GetVisitId() != "" {
			require.Equal(t, task.GetVisitId(), e.GetVisitId())
		}
	}
	require.ElementsMatch(t, want, kinds)
	require.Equal(t, intakev1.TimelineEntryKind_TIMELINE_ENTRY_KIND_SERVICE, kinds[0])
	require.Equal(t, intakev1.TimelineEntryKind_TIMELINE_ENTRY_KIND_VISIT_LOGGED, kinds[len(kinds)-1])

	// An agent of another org unit may neither search nor read this customer's history.
	outside, err := s.issuer.Context(t.Context(), issuer.Token{Subject: "agent-south", Claims: auth.Claims{Tenant: tenant,
		Roles: []string{string(auth.Agent)}, AgentID: "a-9", OrgUnits: []string{"south"}}})
	require.NoError(t, err)
	_, err = s.intake.GetCustomerTimeline(outside, &intakev1.GetCustomerTimelineRequest{TenantId: tenant, CustomerId: customer.GetId()})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	resp, err := s.intake.SearchCustomers(outside, &intakev1.SearchCustomersRequest{TenantId: tenant, Phone: "8000"})
	require.NoError(t, err)
	require.Empty(t, resp.GetCustomers())

	s.checkMetrics() // intake-ledger's lag exported once, by intake
	s.checkNoPersonalData("13800138000", "王芳")
}

// ledgerSearch returns every page of a search, as the staff of the tenant.
func ledgerSearch(t *testing.T, s *system, req *intakev1.SearchCustomersRequest) []*intakev1.CustomerView {
	t.Helper()
	req.TenantId = tenant
	var out []*intakev1.CustomerView
	for {
		resp, err := s.intake.SearchCustomers(t.Context(), req)
		require.NoError(t, err)
		out = append(out, resp.GetCustomers()...)
		if resp.GetNextPageToken() == "" {
			return out
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

// ledgerTimeline reads a customer's whole timeline in pages of size.
func ledgerTimeline(ctx context.Context, s *system, customerID string, size int32) ([]*intakev1.TimelineEntry, error) {
	req := &intakev1.GetCustomerTimelineRequest{TenantId: tenant, CustomerId: customerID, PageSize: size}
	var out []*intakev1.TimelineEntry
	for {
		resp, err := s.intake.GetCustomerTimeline(ctx, req)
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetEntries()...)
		if resp.GetNextPageToken() == "" {
			return out, nil
		}
		req.PageToken = resp.GetNextPageToken()
	}
}
