package app

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// sources parses the service's Go files, tests left out, by path relative
// to the service's root.
func sources(t *testing.T) map[string]*ast.File {
	t.Helper()
	root := filepath.Join("..", "..")
	files := map[string]*ast.File{}
	fset := token.NewFileSet()
	require.NoError(t, filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		files[filepath.ToSlash(rel)] = f
		return nil
	}))
	require.NotEmpty(t, files)
	return files
}

// The service's shape: app is the only package that writes events or
// dead letters, ComplaintEscalated is built in one place, and the domain
// packages do no I/O.
func TestShape(t *testing.T) {
	files := sources(t)
	escalatedBuilt := 0
	for path, f := range files {
		inApp := strings.HasPrefix(path, "internal/app/")
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok {
					name := x.Name + "." + n.Sel.Name
					switch name {
					case "outbox.Add", "outbox.AddRaw", "inbox.Reject":
						require.True(t, inApp, "%s calls %s: only internal/app writes to the outbox", path, name)
					}
				}
			case *ast.CompositeLit:
				if sel, ok := n.Type.(*ast.SelectorExpr); ok && sel.Sel.Name == "ComplaintEscalated" {
					escalatedBuilt++
					require.Equal(t, "internal/app/events.go", path, "ComplaintEscalated is built in app's escalated")
				}
			}
			return true
		})
	}
	require.Equal(t, 1, escalatedBuilt, "one function builds ComplaintEscalated")

	forbidden := []string{"github.com/jackc/", "github.com/nats-io/", "/pkg/outbox", "/pkg/inbox", "/pkg/postgres",
		"/internal/store", "/internal/app", "/internal/wire", "/proto/huifang/events/"}
	for _, domain := range []string{"complaint", "record", "questionnaire", "review", "visit"} {
		for path, f := range files {
			if !strings.HasPrefix(path, "internal/"+domain+"/") {
				continue
			}
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				for _, bad := range forbidden {
					require.NotContains(t, p, bad, "%s imports %s: the domain does no I/O and writes no event", path, p)
				}
			}
		}
	}
}
