package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/issuer"
)

// tokenTTL is how long the tokens written to .dev/tokens/ stay valid.
const tokenTTL = 30 * 24 * time.Hour

// demoUnits are the demo's branches (loadDemo's events): the leader leads
// them, and the agent belongs to them.
func demoUnits() []string {
	return []string{"shanghai-pudong", "beijing-chaoyang", "guangzhou-tianhe"}
}

// devTokens are the people (and systems) of the demo tenant that get a ready
// token, by file name.
func devTokens() map[string]issuer.Token {
	units := demoUnits()
	person := func(sub, agent string, roles ...auth.Role) issuer.Token {
		var rs []string
		for _, r := range roles {
			rs = append(rs, string(r))
		}
		return issuer.Token{Subject: sub, TTL: tokenTTL, Claims: auth.Claims{Tenant: "default", Roles: rs, AgentID: agent, OrgUnits: units}}
	}
	integrator := issuer.Integrator("default", "erp-demo")
	integrator.TTL = tokenTTL
	owner := person("owner-1", "", auth.DepartmentOwner)
	owner.Departments = []string{"after_sales"}
	operator := issuer.Operator()
	operator.TTL = tokenTTL
	return map[string]issuer.Token{
		"agent":      person("agent-a-1", "a-1", auth.Agent),
		"leader":     person("leader-l-1", "l-1", auth.Leader),
		"director":   person("director-d-1", "d-1", auth.Director),
		"qa":         person("qa-1", "", auth.QAReviewer),
		"owner":      owner,
		"auditor":    person("auditor-1", "", auth.Auditor),
		"admin":      person("admin-1", "", auth.TenantAdmin),
		"integrator": integrator,
		"operator":   operator,
	}
}

// startIssuer starts the local OpenID Connect issuer on 127.0.0.1 with the
// keys kept in .dev/issuer/ (so tokens written before stay valid) and writes
// a token per demo person to .dev/tokens/<name>.jwt.
func startIssuer(log *slog.Logger, cfg config) (*issuer.Issuer, error) {
	addr := "127.0.0.1:" + strconv.Itoa(cfg.issuerPort+cfg.portOffset)
	is, err := issuer.Listen(addr, "huifang")
	if err != nil {
		return nil, fmt.Errorf("local token issuer on %s: %w", addr, err)
	}
	keys := filepath.Join(cfg.devDir, "issuer", "keys.json")
	if err := os.MkdirAll(filepath.Dir(keys), 0o700); err != nil {
		_ = is.Close()
		return nil, err
	}
	switch err := is.LoadKeys(keys); {
	case errors.Is(err, fs.ErrNotExist):
		err = is.SaveKeys(keys)
		if err != nil {
			_ = is.Close()
			return nil, err
		}
	case err != nil:
		_ = is.Close()
		return nil, err
	}
	dir := filepath.Join(cfg.devDir, "tokens")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		_ = is.Close()
		return nil, err
	}
	for name, tok := range devTokens() {
		raw, err := is.Mint(tok)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name+".jwt"), []byte(raw+"\n"), 0o600)
		}
		if err != nil {
			_ = is.Close()
			return nil, fmt.Errorf("token %s: %w", name, err)
		}
	}
	log.Info("local token issuer started", "issuer", is.URL(), "tokens", dir, "valid_for", tokenTTL)
	return is, nil
}
