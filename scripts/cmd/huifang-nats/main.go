// Command huifang-nats runs a NATS server with JetStream, the version Huifang
// is built against, with every write synced to disk. It prints the client URL
// on stdout once the server is ready and runs until SIGINT or SIGTERM.
//
// The end-to-end test runs it as a separate process (rather than inside the
// race-instrumented test binary, where the race detector reports a data race
// inside nats-server between a stream update and a consumer creation).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
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
	if err := fs.Parse(args); err != nil {
		return err
	}
	ns, err := stack.StartNATS(*store, *port)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, ns.ClientURL())
	<-ctx.Done()
	ns.Shutdown()
	ns.WaitForShutdown()
	return nil
}
