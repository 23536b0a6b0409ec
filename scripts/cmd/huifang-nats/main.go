// Command huifang-nats runs a NATS server with JetStream, the version Huifang
// is built against, with every write synced to disk. It prints the client URL
// on stdout once the server is ready and runs until SIGINT or SIGTERM. With
// -cluster-port and -routes it is one node of a JetStream cluster (the
// multi-replica test runs three on loopback ports).
//
// The end-to-end test runs it as a separate process (rather than inside the
// race-instrumented test binary, where the race detector reports a data race
// inside nats-server between a stream update and a consumer creation).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/huifang/huifang/scripts/internal/stack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "huifang-nats:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("huifang-nats", flag.ContinueOnError)
	port := fs.Int("port", 4223, "port on 127.0.0.1; -1 picks a free one")
	store := fs.String("store", ".dev/nats", "JetStream store folder")
	name := fs.String("name", "huifang-dev", "server name (unique within a cluster)")
	clusterName := fs.String("cluster", "huifang", "cluster name, with -cluster-port")
	clusterPort := fs.Int("cluster-port", 0, "route port on 127.0.0.1; makes the server a node of a JetStream cluster")
	routes := fs.String("routes", "", "comma-separated routes to the cluster's nodes (nats-route://127.0.0.1:6222,...), with -cluster-port")
	users := fs.Bool("users", false, "take only Huifang's users (one per service with its permissions, the integrator erp, admin; each user's password is its name: loopback tests only); the printed URL is admin's")
	profPort := fs.Int("prof-port", 0, "serve the server's Go runtime profiles (/debug/pprof/) on this port of 127.0.0.1; 0: none")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*clusterPort == 0) != (*routes == "") {
		return errors.New("-cluster-port and -routes go together")
	}
	node := stack.NATSNode{Name: *name, Dir: *store, Port: *port, ProfPort: *profPort}
	if *clusterPort != 0 {
		node.ClusterName, node.ClusterPort, node.Routes = *clusterName, *clusterPort, strings.Split(*routes, ",")
	}
	if *users {
		node.Users = stack.HuifangUsers()
	}
	ns, err := stack.StartNATSNode(node)
	if err != nil {
		return err
	}
	url := ns.ClientURL()
	if *users {
		url = strings.Replace(url, "nats://", "nats://admin:admin@", 1)
	}
	fmt.Fprintln(stdout, url)
	<-ctx.Done()
	ns.Shutdown()
	ns.WaitForShutdown()
	return nil
}
