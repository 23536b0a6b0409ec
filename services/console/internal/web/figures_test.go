package web_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFiguresAndPoliciesRefuseAnAgent: the dashboards and the report are
// for leaders and directors, the policy desk for tenant admins and
// directors; an agent is told so (403) without a call to a service, and a
// month that is not one is a field violation.
func TestFiguresAndPoliciesRefuseAnAgent(t *testing.T) {
	c := startConsole(t)
	b := browser(t)
	signIn(t, c, b, "/", "agent")
	for page, want := range map[string]string{
		"/figures":                   "The figures are for team leaders and directors.",
		"/reports/monthly":           "The figures are for team leaders and directors.",
		"/reports/monthly.csv":       "The figures are for team leaders and directors.",
		"/policies":                  "The policy desk is for tenant administrators and directors.",
		"/policies/p-1":              "The policy desk is for tenant administrators and directors.",
		"/policy-changes/c-1":        "The policy desk is for tenant administrators and directors.",
		"/reports/monthly?month=may": "must be a month as YYYY-MM",
	} {
		res, err := b.Get(c.url + page)
		require.NoError(t, err)
		html := body(t, res)
		require.Contains(t, html, want, page)
		require.Contains(t, html, `data-testid="problem"`, page)
		if page == "/reports/monthly?month=may" {
			require.Equal(t, http.StatusBadRequest, res.StatusCode, page)
			require.Contains(t, html, "<code>month</code>", "the field violation")
		} else {
			require.Equal(t, http.StatusForbidden, res.StatusCode, page)
		}
	}
}
