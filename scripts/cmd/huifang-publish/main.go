// Command huifang-publish publishes one ingress event to NATS JetStream, as an
// upstream system would, and prints the stream sequence JetStream stored it at.
//
//	huifang-publish [-nats URL] [-subject S] [-content-type T] [-id MSGID] [-file F | JSON]
//
// The event is read from -file, else from the argument, else from stdin.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/huifang/huifang/pkg/stream"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "huifang-publish:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("huifang-publish", flag.ContinueOnError)
	natsURL := fs.String("nats", envOr("NATS_URL", "nats://127.0.0.1:4223"), "NATS server (env NATS_URL; make run's server by default)")
	subject := fs.String("subject", stream.SubjectIngressServiceCompleted, "subject to publish on")
	contentType := fs.String("content-type", stream.ContentTypeJSON, "Content-Type header of the message")
	file := fs.String("file", "", "read the event from this file ('-' for stdin)")
	msgID := fs.String("id", "", "Nats-Msg-Id header, for JetStream's duplicate detection (none when empty)")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the server")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: huifang-publish [flags] [-file F | 'JSON']   (stdin when neither is given)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	data, err := payload(*file, fs.Args(), stdin)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	nc, err := nats.Connect(*natsURL, nats.Name("huifang-publish"), nats.Timeout(*timeout))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", *natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	msg := &nats.Msg{Subject: *subject, Data: data, Header: nats.Header{}}
	if *contentType != "" {
		msg.Header.Set(stream.HeaderContentType, *contentType)
	}
	if *msgID != "" {
		msg.Header.Set(jetstream.MsgIDHeader, *msgID)
	}
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoStreamResponse) {
			return fmt.Errorf("publish on %s: no stream takes this subject; start the services first (they create the streams): %w", *subject, err)
		}
		return fmt.Errorf("publish on %s: %w", *subject, err)
	}
	if ack.Duplicate {
		fmt.Fprintf(os.Stderr, "huifang-publish: JetStream already had message id %q; nothing was stored\n", *msgID)
	}
	fmt.Fprintln(stdout, ack.Sequence)
	return nil
}

// payload reads the event from the file, the argument or stdin.
func payload(file string, args []string, stdin io.Reader) ([]byte, error) {
	switch {
	case len(args) > 1:
		return nil, errors.New("give the event as one argument (quote it)")
	case file != "" && len(args) == 1:
		return nil, errors.New("give the event either with -file or as an argument, not both")
	case file == "-" || (file == "" && len(args) == 0):
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return b, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read event: %w", err)
		}
		return b, nil
	default:
		return []byte(args[0]), nil
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
