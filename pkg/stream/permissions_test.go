package stream_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/huifang/huifang/pkg/natstest"
	"github.com/huifang/huifang/pkg/stream"
)

// TestPermissions runs a NATS server with one user per service and an
// integrator, each with the permissions of pkg/stream: a service provisions
// the streams, publishes its own events and dead letters, and consumes; it
// may not publish another service's events nor on the ingress subjects; an
// integrator publishes on the ingress subjects only.
func TestPermissions(t *testing.T) {
	users := []*natsUser{{name: "erp", perms: stream.IntegratorPermissions()}}
	for _, svc := range stream.Services() {
		users = append(users, &natsUser{name: svc, perms: stream.ServicePermissions(svc)})
	}
	var su []*server.User
	for _, u := range users {
		su = append(su, natstest.User(u.name, "pw-"+u.name, u.perms))
	}
	srv := natstest.StartWithUsers(t, su...)
	// violations receives the server's permission refusals of every
	// connection (they come asynchronously).
	violations := make(chan string, 64)
	conns := map[jetstream.JetStream]*nats.Conn{}
	connect := func(name string) jetstream.JetStream {
		nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(name, "pw-"+name), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			violations <- name + ": " + err.Error()
		}))
		if err != nil {
			t.Fatalf("connect as %s: %v", name, err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		conns[js] = nc
		return js
	}
	publish := func(js jetstream.JetStream, subject string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := js.Publish(ctx, subject, []byte("{}"), jetstream.WithMsgID(fmt.Sprintf("%s-%d", subject, time.Now().UnixNano())))
		return err
	}
	// refused publishes on subject and waits for the server to refuse it.
	refused := func(js jetstream.JetStream, subject string) bool {
		nc := conns[js]
		if err := nc.Publish(subject, []byte("{}")); err != nil {
			return true
		}
		if err := nc.Flush(); err != nil {
			return true
		}
		deadline := time.After(30 * time.Second)
		for {
			select {
			case v := <-violations:
				if strings.Contains(v, "Permissions Violation") && strings.Contains(v, subject) {
					return true
				}
			case <-deadline:
				return false
			}
		}
	}
	ctx := context.Background()

	if _, err := nats.Connect(srv.ClientURL()); err == nil {
		t.Fatal("a client without credentials connected")
	}
	intake := connect("intake")
	if err := stream.Ensure(ctx, intake, stream.Config{}); err != nil {
		t.Fatalf("a service provisions the streams: %v", err)
	}
	for _, svc := range stream.Services() {
		js := connect(svc)
		for _, subject := range append(stream.Publishes(svc), stream.DeadLetterSubject(svc)) {
			if err := publish(js, subject); err != nil {
				t.Errorf("%s publishing its own %s: %v", svc, subject, err)
			}
		}
		if !refused(js, stream.SubjectIngressServiceCompleted) {
			t.Errorf("%s published on the ingress subject", svc)
		}
		other := stream.SubjectTargetBreached
		if svc == "analytics" {
			other = stream.SubjectVisitDue
		}
		if !refused(js, other) {
			t.Errorf("%s published another service's %s", svc, other)
		}
		cons, err := js.CreateOrUpdateConsumer(ctx, stream.EventsStream, jetstream.ConsumerConfig{Durable: svc + "-test", AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			t.Fatalf("%s creates a durable: %v", svc, err)
		}
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatalf("%s fetches: %v", svc, err)
		}
		n := 0
		for m := range batch.Messages() {
			if err := m.Ack(); err != nil {
				t.Errorf("%s acks: %v", svc, err)
			}
			n++
		}
		if n != 1 {
			t.Errorf("%s fetched %d messages, want 1 (%v)", svc, n, batch.Error())
		}
	}

	erp := connect("erp")
	if err := publish(erp, stream.SubjectIngressServiceCompleted); err != nil {
		t.Errorf("the integrator publishing on the ingress subject: %v", err)
	}
	if !refused(erp, stream.SubjectServiceCompleted) {
		t.Error("the integrator published a service's event")
	}
	if !refused(erp, "$JS.API.STREAM.DELETE."+stream.EventsStream) {
		t.Error("the integrator may call the JetStream API")
	}
}

type natsUser struct {
	name  string
	perms stream.Permissions
}
