package web_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/issuer"
)

// addDeskPeople signs in the desk's people at c's issuer, in English.
func addDeskPeople(c console) {
	person := func(login, sub, agent string, depts []string, role auth.Role) issuer.Person {
		return issuer.Person{Login: login, Name: login, Locale: "en", ZoneInfo: "Asia/Shanghai",
			Token: issuer.Token{Subject: sub, Claims: auth.Claims{Tenant: "default", Roles: []string{string(role)}, AgentID: agent,
				OrgUnits: []string{"default"}, Departments: depts}}}
	}
	c.issuer.AddPerson(person("leader", "leader-l-1", "l-1", nil, auth.Leader))
	c.issuer.AddPerson(person("owner", "owner-1", "", []string{"after_sales"}, auth.DepartmentOwner))
	c.issuer.AddPerson(person("qa", "qa-1", "", nil, auth.QAReviewer))
}

// TestDeskRefusesOtherRoles: the desk, the complaints and quality review
// refuse a user whose roles may not open them, before calling a service,
// and say so; the live parts refuse too.
func TestDeskRefusesOtherRoles(t *testing.T) {
	c := startConsole(t)
	addDeskPeople(c)
	b := browser(t)
	signIn(t, c, b, "/", "agent")
	for _, page := range []string{"/desk", "/complaints", "/complaints/c-1", "/qa", "/qa/r-1"} {
		res, err := b.Get(c.url + page)
		require.NoError(t, err)
		html := body(t, res)
		require.Equal(t, http.StatusForbidden, res.StatusCode, page)
		require.Contains(t, html, `data-testid="problem"`, page)
		require.Contains(t, html, "your role may not open this page", page)
	}
	for _, part := range []string{"/desk/wallboard/part", "/desk/deadlines/part", "/complaints/c-1/part"} {
		res, err := b.Get(c.url + part)
		require.NoError(t, err)
		body(t, res)
		require.Equal(t, http.StatusForbidden, res.StatusCode, part)
	}

	// The owner may see complaints but not the desk; QA only quality review.
	b = browser(t)
	signIn(t, c, b, "/", "owner")
	res, err := b.Get(c.url + "/desk")
	require.NoError(t, err)
	body(t, res)
	require.Equal(t, http.StatusForbidden, res.StatusCode)
	b = browser(t)
	signIn(t, c, b, "/", "qa")
	res, err = b.Get(c.url + "/complaints")
	require.NoError(t, err)
	body(t, res)
	require.Equal(t, http.StatusForbidden, res.StatusCode)
}

// TestDeskPagesShowAnOutage: with the services away, each page of the desk
// still renders, saying they are unavailable (503), instead of failing.
func TestDeskPagesShowAnOutage(t *testing.T) {
	c := startConsole(t)
	addDeskPeople(c)
	for login, pages := range map[string][]string{
		"leader": {"/desk", "/desk?group=g-1", "/complaints?status=open", "/qa?agent=a-1"},
		"owner":  {"/complaints", "/complaints/c-1"},
		"qa":     {"/qa", "/qa/r-1"},
	} {
		b := browser(t)
		signIn(t, c, b, "/", login)
		for _, page := range pages {
			res, err := b.Get(c.url + page)
			require.NoError(t, err)
			html := body(t, res)
			require.Equal(t, http.StatusServiceUnavailable, res.StatusCode, "%s %s: %s", login, page, html)
			require.Contains(t, html, "unavailable", page)
		}
	}
}

// TestDeskFormsNeedTheAntiForgeryToken: the desk's actions refuse a form
// without the session's token before calling any service.
func TestDeskFormsNeedTheAntiForgeryToken(t *testing.T) {
	c := startConsole(t)
	addDeskPeople(c)
	b := browser(t)
	signIn(t, c, b, "/", "leader")
	for _, action := range []string{"/desk/reassign", "/desk/offline", "/complaints/c-1/resolve", "/qa/r-1/review"} {
		res, err := b.PostForm(c.url+action, url.Values{"task_id": {"t-1"}})
		require.NoError(t, err)
		require.Equal(t, http.StatusForbidden, res.StatusCode, action)
		require.Contains(t, body(t, res), "anti-forgery", action)
	}
}
