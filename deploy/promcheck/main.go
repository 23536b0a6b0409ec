// Command promcheck validates the Prometheus side of the deployment offline,
// as Prometheus itself would: alerting and recording rule files (YAML, with
// every expression parsed as PromQL) and the PromQL queries of Grafana
// dashboards (JSON, every "expr"). It is its own module, outside go.work, so
// that Prometheus's many dependencies do not move the services' versions.
//
//	go run . FILE...
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: promcheck FILE...   (rule files .yml/.yaml, dashboards .json)")
		os.Exit(2)
	}
	p := parser.NewParser(parser.Options{})
	failed := false
	for _, f := range os.Args[1:] {
		n, errs := check(p, f)
		for _, err := range errs {
			fmt.Fprintln(os.Stderr, err)
		}
		if len(errs) > 0 {
			failed = true
			continue
		}
		fmt.Printf("%s: %d PromQL expressions valid\n", f, n)
	}
	if failed {
		os.Exit(1)
	}
}

func check(p parser.Parser, file string) (int, []error) {
	switch strings.ToLower(filepath.Ext(file)) {
	case ".yml", ".yaml":
		groups, errs := rulefmt.ParseFile(file, false, model.UTF8Validation, p, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if len(errs) > 0 {
			return 0, errs
		}
		n := 0
		for _, g := range groups.Groups {
			n += len(g.Rules)
		}
		if n == 0 {
			return 0, []error{fmt.Errorf("%s: no rules", file)}
		}
		return n, nil
	case ".json":
		b, err := os.ReadFile(file)
		if err != nil {
			return 0, []error{err}
		}
		var doc any
		if err := json.Unmarshal(b, &doc); err != nil {
			return 0, []error{fmt.Errorf("%s: %w", file, err)}
		}
		var exprs []string
		collect(doc, &exprs)
		var errs []error
		for _, e := range exprs {
			if _, err := p.ParseExpr(e); err != nil {
				errs = append(errs, fmt.Errorf("%s: %q: %w", file, e, err))
			}
		}
		if len(exprs) == 0 {
			errs = append(errs, fmt.Errorf("%s: no expr found", file))
		}
		return len(exprs), errs
	}
	return 0, []error{fmt.Errorf("%s: want a .yml/.yaml rule file or a .json dashboard", file)}
}

// collect finds every "expr" string in a dashboard.
func collect(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && k == "expr" && s != "" {
				*out = append(*out, s)
				continue
			}
			collect(val, out)
		}
	case []any:
		for _, val := range x {
			collect(val, out)
		}
	}
}
