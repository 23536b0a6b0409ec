// Command huifang-docs rewrites the generated parts of the docs: the
// permission tables in docs/security.md (from pkg/access). `make generate`
// runs it.
package main

import (
	"fmt"
	"os"

	"github.com/huifang/huifang/pkg/access"
)

func main() {
	path := "docs/security.md"
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	if err := splice(path); err != nil {
		fmt.Fprintln(os.Stderr, "huifang-docs:", err)
		os.Exit(1)
	}
}

func splice(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := access.Splice(string(b))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if out == string(b) {
		return nil
	}
	return os.WriteFile(path, []byte(out), 0o644)
}
