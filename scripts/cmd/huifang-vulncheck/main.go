// Command huifang-vulncheck runs govulncheck over Huifang's modules
// (`make lint`) against a vulnerability database built from
// golang.org/x/vulndb as the Go module proxy serves it: this machine reaches
// the proxy but not vuln.go.dev. It fails when code of the project calls a
// vulnerable function of a module it requires (upgrade that module), and
// lists the standard library's called vulnerabilities, which only a newer
// Go toolchain fixes, without failing.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// The pinned tools: govulncheck, and the database's source (a pseudo-version
// of golang.org/x/vulndb; newer ones know newer vulnerabilities).
const (
	govulncheck = "golang.org/x/vuln/cmd/govulncheck@v1.9.0"
	vulndb      = "golang.org/x/vulndb@v0.0.0-20261105234957-e22db6528018"
	indexdb     = "golang.org/x/vulndb/cmd/indexdb@v0.0.0-20261105234957-e22db6528018"
)

func main() {
	dbDir := flag.String("db", ".dev/vulndb", "folder for the database built from "+vulndb)
	flag.Parse()
	if err := run(*dbDir, flag.Args(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "huifang-vulncheck:", err)
		os.Exit(1)
	}
}

func run(dbDir string, modules []string, out io.Writer) error {
	if len(modules) == 0 {
		return errors.New("name the module folders to check")
	}
	db, err := database(dbDir)
	if err != nil {
		return err
	}
	var failed []string
	stdlib := map[string]finding{} // by OSV id, once for all modules
	for _, m := range modules {
		fs, err := check(m, db)
		if err != nil {
			return fmt.Errorf("%s: %w", m, err)
		}
		for _, f := range fs {
			if f.Module == "stdlib" || f.Module == "toolchain" {
				stdlib[f.OSV] = f
				continue
			}
			fmt.Fprintf(out, "%s: %s in %s@%s (%s), called from %s; fixed in %s\n", m, f.OSV, f.Module, f.Version, f.Package, f.Caller, f.Fixed)
			failed = append(failed, m+": "+f.OSV)
		}
	}
	ids := make([]string, 0, len(stdlib))
	for id := range stdlib {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		f := stdlib[id]
		fmt.Fprintf(out, "note: %s in the standard library (%s@%s, e.g. from %s): fixed by building with Go %s or later\n", id, f.Package, f.Version, f.Caller, strings.TrimPrefix(f.Fixed, "v"))
	}
	if len(failed) > 0 {
		return fmt.Errorf("code calls vulnerable functions of required modules: %s", strings.Join(failed, ", "))
	}
	fmt.Fprintf(out, "no called vulnerability in a required module (%d modules, database %s)\n", len(modules), vulndb)
	return nil
}

// database builds the govulncheck database from the vulndb module's OSV
// files once (indexdb) and returns its file:// URL.
func database(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	stamp := filepath.Join(abs, "SOURCE")
	if b, err := os.ReadFile(stamp); err == nil && string(b) == vulndb {
		return "file://" + abs, nil
	}
	var dl struct{ Dir string }
	b, err := exec.Command("go", "mod", "download", "-json", vulndb).Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %w", vulndb, err)
	}
	if err := json.Unmarshal(b, &dl); err != nil || dl.Dir == "" {
		return "", fmt.Errorf("go mod download %s: no folder (%v)", vulndb, err)
	}
	if err := os.RemoveAll(abs); err != nil {
		return "", err
	}
	cmd := exec.Command("go", "run", indexdb, "-vulns", filepath.Join(dl.Dir, "data", "osv"), "-out", abs)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the database: %w", err)
	}
	return "file://" + abs, os.WriteFile(stamp, []byte(vulndb), 0o644)
}

// finding is a vulnerable function the module's code calls.
type finding struct {
	OSV, Module, Version, Package, Caller, Fixed string
}

// check runs govulncheck in module folder m and returns the called
// vulnerabilities (symbol-level findings), one per OSV entry and module.
func check(m, db string) ([]finding, error) {
	cmd := exec.Command("go", "run", govulncheck, "-db", db, "-format", "json", "./...")
	cmd.Dir = m
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("govulncheck: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	dec := json.NewDecoder(&stdout)
	seen := map[string]finding{}
	for {
		var msg struct {
			Finding *struct {
				OSV          string `json:"osv"`
				FixedVersion string `json:"fixed_version"`
				Trace        []struct {
					Module, Version, Package, Function, Receiver string
				} `json:"trace"`
			} `json:"finding"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("reading govulncheck's answer: %w", err)
		}
		f := msg.Finding
		if f == nil || len(f.Trace) == 0 || f.Trace[0].Function == "" {
			continue // imported or required, not called
		}
		top, caller := f.Trace[0], f.Trace[len(f.Trace)-1]
		key := f.OSV + " " + top.Module
		if _, ok := seen[key]; ok {
			continue
		}
		seen[key] = finding{OSV: f.OSV, Module: top.Module, Version: top.Version, Package: top.Package,
			Caller: caller.Package + "." + caller.Function, Fixed: f.FixedVersion}
	}
	out := make([]finding, 0, len(seen))
	for _, f := range seen {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].OSV+out[i].Module < out[j].OSV+out[j].Module })
	return out, nil
}
