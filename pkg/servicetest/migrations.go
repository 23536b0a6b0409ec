package servicetest

import (
	"io/fs"
	"testing"
	"testing/fstest"
)

// MigrationsBefore is the migrations of fsys (*.sql) whose file names sort
// before prefix: a schema as a release before the migration named prefix
// left it, for tests of an upgrade.
func MigrationsBefore(t testing.TB, fsys fs.FS, prefix string) fs.FS {
	t.Helper()
	out := fstest.MapFS{}
	files, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		t.Fatalf("servicetest: migrations: %v", err)
	}
	for _, f := range files {
		if f >= prefix {
			continue
		}
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			t.Fatalf("servicetest: migration %s: %v", f, err)
		}
		out[f] = &fstest.MapFile{Data: data}
	}
	return out
}
