package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Root finds the repository's root: the nearest folder at or above dir that
// holds go.work.
func Root(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("stack: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("stack: no go.work found above the current folder")
		}
		dir = parent
	}
}

// Build compiles the five services and the console from the repository at
// root into outDir, one binary each, named after it, and the commands of
// scripts/cmd that are named in extra (e.g. "huifang-nats").
func Build(ctx context.Context, root, outDir string, extra ...string) error {
	args := []string{"build", "-o", outDir + string(filepath.Separator)}
	for _, s := range Services() {
		args = append(args, "./services/"+s+"/cmd/"+s)
	}
	args = append(args, "./services/console/cmd/console")
	for _, c := range extra {
		args = append(args, "./scripts/cmd/"+c)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("stack: go %v: %w\n%s", args, err, out)
	}
	return nil
}
