package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

func write(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	tests := []struct {
		name, file, body string
		ok               bool
	}{
		{"valid rule", "a.yml", "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: max(huifang_outbox_pending) > 1000\n    for: 5m\n", true},
		{"broken PromQL", "b.yml", "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: max(huifang_outbox_pending > \n", false},
		{"unknown field", "c.yml", "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    severity: page\n", false},
		{"valid dashboard", "d.json", `{"panels":[{"targets":[{"expr":"rate(huifang_grpc_requests_total[5m])"}]}]}`, true},
		{"broken dashboard query", "e.json", `{"panels":[{"targets":[{"expr":"rate(huifang_grpc_requests_total[5m]"}]}]}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := check(p, write(t, tc.file, tc.body))
			if (len(errs) == 0) != tc.ok {
				t.Fatalf("ok=%v, errors: %v", tc.ok, errs)
			}
		})
	}
}
