package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/issuer"
)

// TestHTTPGateway calls the five services as a frontend would, over
// HTTP/JSON on their HTTP ports (docs/api.md): each serves its generated
// OpenAPI document; a call without a token is 401, a role the permission
// table does not name 403, a field that breaks its .proto rule 400 with the
// violation, and a good call answers JSON with the proto names: the guard
// and the request rules of the gRPC port apply.
func TestHTTPGateway(t *testing.T) {
	s := setup(t, nil)
	s.prepare()
	mint := func(tok issuer.Token) string {
		raw, err := s.issuer.Mint(tok)
		require.NoError(t, err)
		return raw
	}
	staff := mint(issuer.Staff(tenant, agent))
	agentOnly := mint(issuer.Token{Subject: "li-na", Claims: auth.Claims{Tenant: tenant, Roles: []string{"agent"}, AgentID: agent}})
	get := func(svc, path, token string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+s.st.HTTPAddr(svc)+path, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		var out map[string]any
		require.NoError(t, json.Unmarshal(raw, &out), "%s %s: %s", svc, path, raw)
		return resp.StatusCode, out
	}

	docs := map[string]map[string]any{}
	for _, svc := range []string{"intake", "scheduler", "dispatch", "feedback", "analytics"} {
		code, doc := get(svc, "/openapi.json", "")
		require.Equal(t, http.StatusOK, code, svc)
		require.Equal(t, "2.0", doc["swagger"], svc)
		require.NotEmpty(t, doc["paths"], svc)
		docs[svc] = doc
	}
	// The calls issue 17 added have their routes; the watches have none (gRPC only).
	for svc, paths := range map[string][]string{
		"intake":    {"/v1/customers:search", "/v1/customers/{customer_id}/timeline"},
		"scheduler": {"/v1/visits"},
		"dispatch": {"/v1/tasks/{task_id}/attempts", "/v1/tasks/{task_id}/context", "/v1/tasks/{task_id}/appointments",
			"/v1/appointments", "/v1/appointments/{appointment_id}:move", "/v1/appointments/{appointment_id}:cancel",
			"/v1/agents/{agent_id}/presence", "/v1/wallboard"},
		"feedback": {"/v1/complaints", "/v1/reviews", "/v1/policies/{policy_id}/questionnaire"},
	} {
		for _, path := range paths {
			require.Contains(t, docs[svc]["paths"], path, svc)
		}
		for path := range docs[svc]["paths"].(map[string]any) {
			require.NotContains(t, strings.ToLower(path), "watch", svc)
		}
	}

	code, out := get("dispatch", "/v1/tasks", "")
	require.Equal(t, http.StatusUnauthorized, code, "%v", out)
	code, out = get("intake", "/v1/customers", agentOnly)
	require.Equal(t, http.StatusForbidden, code, "ListCustomers is the directors': %v", out)

	code, out = get("dispatch", "/v1/tasks?page_size=501", staff)
	require.Equal(t, http.StatusBadRequest, code, "%v", out)
	details := out["details"].([]any)
	violation := details[0].(map[string]any)["field_violations"].([]any)[0].(map[string]any)
	require.Equal(t, "page_size", violation["field"])
	code, out = get("dispatch", "/v1/tasks/%20/attempts", staff)
	require.Equal(t, http.StatusBadRequest, code, "%v", out)
	violation = out["details"].([]any)[0].(map[string]any)["field_violations"].([]any)[0].(map[string]any)
	require.Equal(t, "task_id", violation["field"], "a blank path parameter breaks dispatch.proto's not_blank rule")

	code, out = get("dispatch", "/v1/wallboard", staff)
	require.Equal(t, http.StatusOK, code, "%v", out)
	require.Contains(t, out, "wallboard")

	code, out = get("scheduler", "/v1/policies?page_size=2", staff)
	require.Equal(t, http.StatusOK, code, "%v", out)
	policies, _ := out["policies"].([]any)
	require.Len(t, policies, 2, "%v", out)
	require.NotEmpty(t, policies[0].(map[string]any)["tenant_id"], "proto names: %v", policies[0])
	require.NotEmpty(t, out["next_page_token"])
}
