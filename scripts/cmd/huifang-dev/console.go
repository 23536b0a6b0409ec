package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/huifang/huifang/pkg/issuer"
	"github.com/huifang/huifang/scripts/internal/stack"
)

// startConsole starts the console beside the services: its public client
// and the demo people (the same as .dev/tokens/, in the demo's org units)
// registered at the local issuer, its session key kept in .dev/console/ so
// that a restart keeps everybody signed in.
func startConsole(ctx context.Context, log *slog.Logger, cfg config, st *stack.Stack, is *issuer.Issuer, logDir string) (*stack.Console, error) {
	port := cfg.consolePort + cfg.portOffset
	addr := "127.0.0.1:" + strconv.Itoa(port)
	public := "http://localhost:" + strconv.Itoa(port)
	stack.RegisterConsole(is, public, demoUnits()...)
	key, err := sessionKey(filepath.Join(cfg.devDir, "console", "session.key"))
	if err != nil {
		return nil, err
	}
	c, err := st.RunConsole(ctx, stack.ConsoleConfig{
		Bin: filepath.Join(cfg.binDir, "console"), Addr: addr, PublicURL: public,
		Auth: is.Config(), SessionKey: key, LogPath: filepath.Join(logDir, "console.log"),
	})
	if err != nil {
		return nil, fmt.Errorf("%w (run 'make build' first)", err)
	}
	log.Info("console ready", "url", c.URL, "log", filepath.Join(logDir, "console.log"))
	return c, nil
}

// sessionKey reads the console's SESSION_KEY from path, or makes a random
// one and keeps it there.
func sessionKey(path string) (string, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		key := strings.TrimSpace(string(b))
		if k, err := hex.DecodeString(key); err == nil && len(k) >= 32 {
			return key, nil
		}
		return "", fmt.Errorf("console session key %s: not 32 bytes of hex (remove it: a new one is made)", path)
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("console session key: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("console session key: %w", err)
	}
	key := hex.EncodeToString(raw)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("console session key: %w", err)
	}
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("console session key: %w", err)
	}
	return key, nil
}
