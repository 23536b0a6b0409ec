// Package natstest runs a real NATS server with JetStream inside the test
// process.
package natstest

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/huifang/huifang/pkg/stream"
)

// Server is an embedded NATS server.
type Server struct {
	*server.Server
	dir   string
	port  int
	users []*server.User
}

// Start runs a JetStream-enabled server on a free loopback port with its
// store in a temporary folder, and shuts it down when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, t.TempDir(), server.RANDOM_PORT)
}

// Restart shuts the server down and starts it again on the same port with
// the same store, as after a crash of the broker.
func (s *Server) Restart(t testing.TB) *Server {
	t.Helper()
	s.Shutdown()
	s.WaitForShutdown()
	return start(t, s.dir, s.port, s.users...)
}

// RestartEmpty shuts the server down and starts a new one on the same port
// with an empty store, as after a node or its volume was replaced: the
// streams and consumers are gone.
func (s *Server) RestartEmpty(t testing.TB) *Server {
	t.Helper()
	s.Shutdown()
	s.WaitForShutdown()
	return start(t, t.TempDir(), s.port, s.users...)
}

// StartWithUsers is Start with user authentication: only these users may
// connect, each with its permissions.
func StartWithUsers(t testing.TB, users ...*server.User) *Server {
	t.Helper()
	return start(t, t.TempDir(), server.RANDOM_PORT, users...)
}

// User is a NATS user with a password and the permissions p.
func User(name, password string, p stream.Permissions) *server.User {
	return &server.User{Username: name, Password: password, Permissions: &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: p.Publish},
		Subscribe: &server.SubjectPermission{Allow: p.Subscribe},
	}}
}

func start(t testing.TB, dir string, port int, users ...*server.User) *Server {
	t.Helper()
	opts := &server.Options{
		Users:      users,
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
		SyncAlways: true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("natstest: server not ready in 10 s")
	}
	t.Cleanup(s.Shutdown)
	return &Server{Server: s, dir: dir, port: s.Addr().(*net.TCPAddr).Port, users: users}
}
