package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	privacyv1 "github.com/huifang/huifang/proto/huifang/privacy/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/issuer"
)

// TestExportCustomerData: a customer reported through the NATS ingress is
// called and answers; the tenant admin's ExportCustomerData returns one
// document with what every service holds about them (intake's archive with
// the clear contacts, the scheduler's visit, dispatch's task, feedback's
// record, analytics' coverage rows) and nothing of another customer; each
// service writes the export to its own audit log. The refusals: another
// role, no reason, an unknown customer, a service other than intake asking
// a peer for its part, a service that does not answer (the export fails,
// naming it). After the customer's erasure, the export holds no
// contact. Nothing of it reaches a log or a table.
func TestExportCustomerData(t *testing.T) {
	s := setup(t, map[string][]string{"intake": {"EXPORT_TIMEOUT=3s"}})
	s.prepare()
	s.publish(ingress("exp-1", "repair", "c-exp", "司马相如", "+8613611112222", time.Now().UTC()))
	task := s.claim()
	customerID := task.GetCustomer().GetId()
	s.publish(ingress("exp-2", "repair", "c-other", "卓文君", "+8613633334444", time.Now().UTC()))
	s.logVisit(&feedbackv1.LogVisitRequest{TenantId: tenant, VisitId: task.GetVisitId(), AgentId: agent,
		Answers: []*typesv1.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}}})
	waitFor(t, taskDeadline, "analytics to count the answer", func() (bool, bool, error) {
		resp, err := s.analytics.GetSatisfaction(t.Context(), &analyticsv1.GetSatisfactionRequest{TenantId: tenant, Aspect: "overall"})
		return true, err == nil && resp.GetReturned() == 1, err
	})

	admin, err := s.issuer.Context(t.Context(), issuer.Token{Subject: "dpo-1", Claims: auth.Claims{Tenant: tenant, Roles: []string{string(auth.TenantAdmin)}}})
	require.NoError(t, err)
	const reason = "access request of the customer, ticket 4711"
	export := func() map[string]any {
		resp, err := s.intake.ExportCustomerData(admin, &intakev1.ExportCustomerDataRequest{TenantId: tenant, CustomerId: customerID, Reason: reason})
		require.NoError(t, err)
		b, err := protojson.Marshal(resp.GetDocument())
		require.NoError(t, err)
		doc := map[string]any{}
		require.NoError(t, json.Unmarshal(b, &doc))
		require.NotContains(t, string(b), "13633334444", "another customer's phone")
		require.NotContains(t, string(b), "卓文君", "another customer's name")
		return doc
	}
	doc := export()
	require.Equal(t, customerID, doc["customer_id"])
	require.Equal(t, "dpo-1", doc["exported_by"])
	archive := section(t, doc, "intake")["customer"].(map[string]any)
	require.Equal(t, "+8613611112222", archive["phone"], "the person's own contacts, opened")
	require.Equal(t, "司马相如", archive["name"])
	rows := func(svc, table string) []any {
		list, _ := section(t, doc, svc)[table].([]any)
		return list
	}
	require.Len(t, rows("intake", "services"), 1)
	require.NotEmpty(t, rows("scheduler", "planned_visits"))
	require.Len(t, rows("dispatch", "tasks"), 1)
	require.Len(t, rows("feedback", "visit_records"), 1)
	require.NotEmpty(t, rows("analytics", "customers"))
	require.Empty(t, rows("intake", "customer_keys"), "key material is not exported")
	task0 := rows("dispatch", "tasks")[0].(map[string]any)
	require.Equal(t, task.GetId(), task0["id"])

	// Every service wrote the export to its audit log: intake as the admin,
	// the others as intake on the admin's behalf.
	for _, svc := range []string{"intake", "scheduler", "dispatch", "feedback", "analytics"} {
		var actor, detail string
		require.NoError(t, s.db.QueryRow(t.Context(), `SELECT actor, detail FROM `+svc+`.audit_log
WHERE action = 'customer.export' AND target_id = $1`, customerID).Scan(&actor, &detail), svc)
		require.Contains(t, detail, reason, svc)
		if svc == "intake" {
			require.Equal(t, "dpo-1", actor)
		} else {
			require.Equal(t, "service-intake", actor, svc)
			require.Contains(t, detail, `"on_behalf_of":"dpo-1"`, svc)
		}
	}

	// The refusals.
	asAgent, err := s.issuer.Context(t.Context(), issuer.Token{Subject: "li-na", Claims: auth.Claims{Tenant: tenant, Roles: []string{"agent"}, AgentID: agent}})
	require.NoError(t, err)
	_, err = s.intake.ExportCustomerData(asAgent, &intakev1.ExportCustomerDataRequest{TenantId: tenant, CustomerId: customerID, Reason: reason})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	_, err = s.intake.ExportCustomerData(admin, &intakev1.ExportCustomerDataRequest{TenantId: tenant, CustomerId: customerID})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.Contains(t, err.Error(), "reason")
	_, err = s.intake.ExportCustomerData(admin, &intakev1.ExportCustomerDataRequest{TenantId: tenant, CustomerId: "no-such-customer", Reason: reason})
	require.Equal(t, codes.NotFound, status.Code(err), "%v", err)
	asDispatch, err := s.issuer.Context(t.Context(), issuer.ServiceAccount("dispatch"))
	require.NoError(t, err)
	_, err = privacyv1.NewCustomerDataServiceClient(s.conn("scheduler")).ExportCustomerData(asDispatch, &privacyv1.ExportCustomerDataRequest{
		TenantId: tenant, CustomerId: customerID, Reason: reason, OnBehalfOf: "someone"})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "only intake gathers an export: %v", err)

	// A service that does not answer fails the whole export, naming it, and
	// intake records no export.
	require.NoError(t, s.st.Stop(t.Context(), "analytics"))
	_, err = s.intake.ExportCustomerData(admin, &intakev1.ExportCustomerDataRequest{TenantId: tenant, CustomerId: customerID, Reason: reason})
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.Contains(t, err.Error(), "analytics")
	var exports int
	require.NoError(t, s.db.QueryRow(t.Context(), `SELECT count(*) FROM intake.audit_log WHERE action = 'customer.export'`).Scan(&exports))
	require.Equal(t, 1, exports)
	require.NoError(t, s.st.StartService(t.Context(), "analytics"))

	// Erased, the export says so and holds no contact, masked or clear.
	_, err = s.intake.EraseCustomer(admin, &intakev1.EraseCustomerRequest{TenantId: tenant, CustomerId: customerID, Reason: "the customer's request"})
	require.NoError(t, err)
	waitFor(t, taskDeadline, "dispatch and the scheduler to forget the masked contact", func() (bool, bool, error) {
		b, err := json.Marshal(export())
		return true, err == nil && !strings.Contains(string(b), "*******2222") && !strings.Contains(string(b), "司"), err
	})
	doc = export()
	archive = section(t, doc, "intake")["customer"].(map[string]any)
	require.Empty(t, archive["phone"])
	require.Empty(t, archive["name"])
	var actions []any
	for _, e := range section(t, doc, "intake")["audit_log"].([]any) {
		actions = append(actions, e.(map[string]any)["action"])
	}
	require.Contains(t, actions, "customer.erase", "the export says the customer was erased, and why")
	require.Contains(t, actions, "customer.export", "and who exported the data before")
	optOuts := section(t, doc, "scheduler")["opt_outs"].([]any)
	require.Len(t, optOuts, 5, "every channel, with the source and time of the opt-out")
	for _, o := range optOuts {
		require.Contains(t, o.(map[string]any)["source"], "intake: erased")
	}

	s.checkNoPersonalData("13611112222", "司马相如")
}

// section is one service's part of an export.
func section(t *testing.T, doc map[string]any, svc string) map[string]any {
	t.Helper()
	part, ok := doc[svc].(map[string]any)
	require.True(t, ok, "the export has no part of %s: %v", svc, doc)
	return part
}
