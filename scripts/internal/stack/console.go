package stack

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/issuer"
)

// ConsoleClientID is the console's public client at the identity provider.
const ConsoleClientID = "huifang-console"

// ConsoleConfig says how to run the console beside a stack.
type ConsoleConfig struct {
	// Bin is the console's binary.
	Bin string
	// Addr is where it listens (host:port); PublicURL how browsers reach
	// it (http://localhost:<port> when empty).
	Addr, PublicURL string
	// Auth is the identity provider (AUTH_ISSUER...).
	Auth auth.Config
	// SessionKey is SESSION_KEY (hex).
	SessionKey string
	// LogPath receives the console's output (appended to).
	LogPath string
	// Env holds extra variables.
	Env []string
}

// Console is a running console process.
type Console struct {
	URL  string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// RunConsole starts the console calling the stack's services and waits
// until it is ready.
func (s *Stack) RunConsole(ctx context.Context, cfg ConsoleConfig) (*Console, error) {
	if cfg.PublicURL == "" {
		_, port, _ := strings.Cut(cfg.Addr, ":")
		cfg.PublicURL = "http://localhost:" + port
	}
	cmd := exec.Command(cfg.Bin)
	cmd.Env = append(baseEnv(), "HTTP_ADDR="+cfg.Addr, "PUBLIC_URL="+cfg.PublicURL,
		"AUTH_ISSUER="+cfg.Auth.Issuer, "AUTH_AUDIENCE="+cfg.Auth.Audience, "AUTH_JWKS_URL="+cfg.Auth.JWKSURL,
		"AUTH_CLIENT_ID="+ConsoleClientID, "SESSION_KEY="+cfg.SessionKey)
	for _, svc := range Services() {
		cmd.Env = append(cmd.Env, strings.ToUpper(svc)+"_ADDR="+s.GRPCAddr(svc))
	}
	if s.cfg.LogLevel != "" {
		cmd.Env = append(cmd.Env, "LOG_LEVEL="+s.cfg.LogLevel)
	}
	cmd.Env = append(cmd.Env, cfg.Env...)
	cmd.SysProcAttr = sysProcAttr()
	c := &Console{URL: cfg.PublicURL, cmd: cmd, done: make(chan struct{})}
	if cfg.LogPath != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.LogPath), 0o755); err != nil {
			return nil, fmt.Errorf("stack: console log: %w", err)
		}
		f, err := os.OpenFile(cfg.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("stack: console log: %w", err)
		}
		c.log = f
		cmd.Stdout, cmd.Stderr = f, f
	} else {
		w := &prefixWriter{prefix: "console | ", w: s.out}
		cmd.Stdout, cmd.Stderr = w, w
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("stack: start the console: %w", err)
	}
	go func() {
		_ = cmd.Wait()
		if c.log != nil {
			_ = c.log.Close()
		}
		close(c.done)
	}()
	deadline := time.Now().Add(s.cfg.ReadyTimeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cfg.Addr+"/readyz", nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return c, nil
			}
		}
		select {
		case <-c.done:
			return nil, fmt.Errorf("stack: the console exited at start (log: %s)", cfg.LogPath)
		case <-ctx.Done():
			c.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.Stop()
			return nil, fmt.Errorf("stack: the console was not ready within %s (log: %s)", s.cfg.ReadyTimeout, cfg.LogPath)
		}
	}
}

// Stop ends the console (SIGTERM, then SIGKILL after 10 s).
func (c *Console) Stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// ConsolePeople are the demo people who sign in to the console at the
// development issuer, by login: the same people as the tokens of `make
// run`, the agent and the leader in units.
func ConsolePeople(units ...string) []issuer.Person {
	person := func(login, name, locale, sub, agent string, units []string, depts []string, roles ...auth.Role) issuer.Person {
		rs := make([]string, len(roles))
		for i, r := range roles {
			rs[i] = string(r)
		}
		return issuer.Person{Login: login, Name: name, Locale: locale, ZoneInfo: "Asia/Shanghai",
			Token: issuer.Token{Subject: sub, TTL: 8 * time.Hour, Claims: auth.Claims{Tenant: "default", Roles: rs, AgentID: agent, OrgUnits: units, Departments: depts}}}
	}
	return []issuer.Person{
		person("agent", "李娜 (agent a-1)", "zh-CN", "agent-a-1", "a-1", units, nil, auth.Agent),
		person("leader", "王强 (leader l-1)", "zh-CN", "leader-l-1", "l-1", units, nil, auth.Leader),
		person("director", "陈静 (director d-1)", "zh-CN", "director-d-1", "d-1", units, nil, auth.Director),
		person("owner", "赵磊 (owner of after_sales)", "zh-CN", "owner-1", "", units, []string{"after_sales"}, auth.DepartmentOwner),
		person("qa", "刘洋 (QA)", "zh-CN", "qa-1", "", units, nil, auth.QAReviewer),
		person("admin", "Admin (tenant admin)", "en", "admin-1", "", units, nil, auth.TenantAdmin),
	}
}

// RegisterConsole lets the console sign people in at is: its public client
// with redirect to publicURL, and the demo people.
func RegisterConsole(is *issuer.Issuer, publicURL string, units ...string) {
	is.AddPublicClient(ConsoleClientID, strings.TrimRight(publicURL, "/")+"/auth/callback")
	for _, p := range ConsolePeople(units...) {
		is.AddPerson(p)
	}
}
