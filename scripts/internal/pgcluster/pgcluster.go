// Package pgcluster runs a PostgreSQL cluster that a test owns: initdb in a
// folder of its own, pg_ctl on a free loopback port, so that the test may
// stop it (as a crash would: pg_ctl stop -m immediate), start it again on the
// same port and data, and end its sessions (pg_terminate_backend), without
// touching any server that others use.
//
// It uses the newest /usr/lib/postgresql/*/bin (PG_BIN overrides). initdb
// refuses root, so as root the cluster belongs to the postgres user and every
// command runs through `runuser -u postgres --`, as scripts/postgres.sh does.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/huifang/huifang/pkg/ports"
	"github.com/jackc/pgx/v5"
)

// Cluster is a running (or stopped) PostgreSQL cluster on 127.0.0.1:Port.
type Cluster struct {
	// Dir holds the data folder (Dir/data) and the server's log (Dir/server.log).
	Dir  string
	Port int
	bin  string
	// owner is the user that runs the commands ("" for ourselves).
	owner string

	mu      sync.Mutex
	running bool
}

// BinDir finds the PostgreSQL programs: $PG_BIN, else the newest
// /usr/lib/postgresql/*/bin with pg_ctl.
func BinDir() (string, error) {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("pgcluster: no PostgreSQL in /usr/lib/postgresql/*/bin (apt-get install postgresql, or set PG_BIN)")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start creates a cluster in a new folder under the system's temporary
// folder (readable by the postgres user when we are root), starts it on a
// free port and waits until it takes connections.
func Start(ctx context.Context) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "huifang-pgcluster-")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	c := &Cluster{Dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, errors.New("pgcluster: running as root needs a 'postgres' user to own the cluster (initdb refuses root)")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("pgcluster: %w", err)
		}
		c.owner = "postgres"
	}
	if out, err := c.run(ctx, "initdb", "-D", c.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions", "--no-sync"); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("pgcluster: initdb: %w\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	c.Port = port
	if err := c.Resume(ctx); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

func (c *Cluster) data() string { return filepath.Join(c.Dir, "data") }

// LogPath is the server's log file.
func (c *Cluster) LogPath() string { return filepath.Join(c.Dir, "server.log") }

// URL is the connection URL of database db on the cluster.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// AdminURL is the URL of the postgres database, for creating others.
func (c *Cluster) AdminURL() string { return c.URL("postgres") }

// Running says whether the server was started and not stopped since.
func (c *Cluster) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

// Resume starts the server (again) on its port and data and waits until it
// takes connections; after an immediate stop it runs crash recovery first.
func (c *Cluster) Resume(ctx context.Context) error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=64MB", c.Port, c.Dir)
	if out, err := c.run(ctx, "pg_ctl", "-D", c.data(), "-l", c.LogPath(), "-o", opts, "-w", "-t", "120", "start"); err != nil {
		return fmt.Errorf("pgcluster: start on port %d: %w\n%s\n%s", c.Port, err, out, c.LogTail(20))
	}
	c.mu.Lock()
	c.running = true
	c.mu.Unlock()
	return c.waitConnect(ctx)
}

// Crash stops the server at once, as a crash would (pg_ctl stop -m
// immediate): no checkpoint, every session cut; the next Resume recovers
// from the WAL.
func (c *Cluster) Crash(ctx context.Context) error { return c.stop(ctx, "immediate") }

// Stop shuts the server down cleanly (fast mode).
func (c *Cluster) Stop(ctx context.Context) error { return c.stop(ctx, "fast") }

func (c *Cluster) stop(ctx context.Context, mode string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return nil
	}
	if out, err := c.run(ctx, "pg_ctl", "-D", c.data(), "-m", mode, "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("pgcluster: stop -m %s: %w\n%s", mode, err, out)
	}
	c.running = false
	return nil
}

// Destroy stops the server and removes its folder.
func (c *Cluster) Destroy() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_ = c.stop(ctx, "immediate")
	_ = os.RemoveAll(c.Dir)
}

// CreateDatabase creates database name and returns its URL.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, c.AdminURL())
	if err != nil {
		return "", fmt.Errorf("pgcluster: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgcluster: create database %s: %w", name, err)
	}
	return c.URL(name), nil
}

// DropDatabase drops database name, ending its sessions.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.AdminURL())
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// Terminate ends every session on database db but the caller's
// (pg_terminate_backend) and returns how many it ended.
func (c *Cluster) Terminate(ctx context.Context, db string) (int, error) {
	conn, err := pgx.Connect(ctx, c.AdminURL())
	if err != nil {
		return 0, fmt.Errorf("pgcluster: %w", err)
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = $1 AND pid <> pg_backend_pid()`, db).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("pgcluster: terminate sessions of %s: %w", db, err)
	}
	return n, nil
}

// LogTail returns the last n lines of the server's log.
func (c *Cluster) LogTail(n int) string {
	b, err := os.ReadFile(c.LogPath())
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (c *Cluster) waitConnect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var last error
	for {
		conn, err := pgx.Connect(ctx, c.AdminURL())
		if err == nil {
			_ = conn.Close(ctx)
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgcluster: no connection on port %d: %w", c.Port, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// run runs one of the PostgreSQL programs as the cluster's owner.
func (c *Cluster) run(ctx context.Context, prog string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, prog)
	var cmd *exec.Cmd
	if c.owner != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.owner, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = c.Dir
	// pg_ctl start leaves the server running: it must not hold our pipes.
	if prog == "pg_ctl" {
		f, err := os.CreateTemp("", "pgcluster-out-")
		if err != nil {
			return nil, err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
		err = cmd.Run()
		out, _ := os.ReadFile(f.Name())
		return out, err
	}
	return cmd.CombinedOutput()
}

func freePort() (int, error) {
	free, err := ports.Free(1)
	if err != nil {
		return 0, fmt.Errorf("pgcluster: %w", err)
	}
	return free[0], nil
}
