package web_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWorkbenchWithTheServicesAway: the workbench still renders when
// dispatch and feedback do not answer, saying why its queue and figures
// are missing; a search refused by an absent intake shows the refusal
// with the service-unavailable status, and keeps what was typed.
func TestWorkbenchWithTheServicesAway(t *testing.T) {
	c := startConsole(t)
	b := browser(t)
	res, page := signIn(t, c, b, "/agent", "agent")
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Contains(t, page, `data-testid="queue"`)
	require.Contains(t, page, `data-live="queue" data-src="/agent/queue/part"`)
	require.Contains(t, page, "unavailable", "the queue's absence is said")
	require.Contains(t, page, `action="/agent/claim"`)

	res, err := b.Get(c.url + "/customers")
	require.NoError(t, err)
	page = body(t, res)
	require.Equal(t, http.StatusOK, res.StatusCode)
	csrf := between(page, `name="csrf" value="`, `"`)
	require.NotEmpty(t, csrf)

	res, err = b.PostForm(c.url+"/customers", url.Values{"q": {"8000"}, "by": {"auto"}})
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, res.StatusCode, "no anti-forgery token")
	_ = body(t, res)

	res, err = b.PostForm(c.url+"/customers", url.Values{"q": {"8000"}, "by": {"auto"}, "csrf": {csrf}})
	require.NoError(t, err)
	page = body(t, res)
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	require.Contains(t, page, `data-testid="problem"`)
	require.Contains(t, page, `value="8000"`)
}
