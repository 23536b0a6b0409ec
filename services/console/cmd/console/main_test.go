package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// The request counter keeps few series: a method a client makes up counts
// as "other", and the status is the one the page wrote.
func TestCountedKeepsFewSeries(t *testing.T) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "huifang_console_requests_total"}, []string{"method", "code"})
	h := counted(c, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	for _, m := range []string{"GET", "POST", "PROPFIND", "X-MADE-UP"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(m, "/", nil))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, families, 1)
	got := map[string]float64{}
	for _, m := range families[0].GetMetric() {
		key := ""
		for _, l := range m.GetLabel() {
			key += l.GetName() + "=" + l.GetValue() + " "
		}
		got[key] = m.GetCounter().GetValue()
	}
	require.Equal(t, map[string]float64{"code=200 method=GET ": 1, "code=403 method=POST ": 1, "code=200 method=other ": 2}, got)
}

// SESSION_KEY is read as hex or base64, and refused when short or missing.
func TestDecodeKey(t *testing.T) {
	_, err := decodeKey("")
	require.ErrorContains(t, err, "required")
	_, err = decodeKey("abcd")
	require.ErrorContains(t, err, "at least 32 bytes")
	k, err := decodeKey("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	require.NoError(t, err)
	require.Len(t, k, 32)
}
