// Package app holds the scheduler's use cases. Commands: plan a completed
// service, apply CustomerUpdated, ContactOptedOut, ComplaintResolved,
// FollowUpRequested, VisitLogged and VisitUnreachable, fire due visits,
// create, update, switch and load policies (refused while the tenant's
// changes need approval), propose, approve and reject policy changes, set
// the approval setting, reschedule and cancel a planned visit, set the
// contact policy, ensure the built-ins. Queries: policies, policy changes,
// planned visits, explain, simulate, the contact policy, the due lag.
//
// A command owns its transaction, or joins the caller's in its Tx form (the
// consumers run those inside the inbox's transaction); it loads through the
// store, lets the domain packages (policy, contact, engine, visit) decide,
// saves, and writes its events to the outbox: app is the only package of
// the scheduler that writes to the outbox.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	calendar "github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/scheduler/internal/contact"
	"github.com/huifang/huifang/services/scheduler/internal/store"
	"github.com/huifang/huifang/services/scheduler/internal/visit"
)

// Notifier is told when a commit wrote events (the outbox relay).
type Notifier interface{ Notify() }

// App runs the use cases.
type App struct {
	// DB is where the commands begin their transactions and the queries
	// read: the pool.
	DB postgres.DB
	// Relay, when set, is woken after a command's own commit.
	Relay Notifier
	// Now is the clock of every decision.
	Now func() time.Time
	// Log, when set, receives the firing failures (else slog.Default).
	Log *slog.Logger
	// DueNow, when set, is called once a consumer's transaction that
	// planned a visit due at once (an instant policy, a 0 s offset) has
	// committed: it wakes the firing loop, so that the visit fires now
	// rather than at the next tick.
	DueNow func()
	// FireFailures, when set, counts the visits marked failed because
	// firing them failed (huifang_scheduler_fire_failures_total).
	FireFailures prometheus.Counter

	// sims admits MaxSimulations simulations at once.
	sims gate
	// zones are the time zones the batches and firing rounds place visits
	// in, each loaded once for the App's life (the contact policies they
	// read are given them as their Calendar's Zones).
	zones calendar.Zones
}

// now is the API's clock: UTC, to the microsecond Postgres keeps.
func (a *App) now() time.Time { return a.Now().UTC().Truncate(time.Microsecond) }

// inTx runs fn in a transaction of its own (a savepoint when DB is a
// transaction) and wakes the relay after the commit.
func (a *App) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if err := pgx.BeginFunc(ctx, a.DB, fn); err != nil {
		return err
	}
	if a.Relay != nil {
		a.Relay.Notify()
	}
	return nil
}

// Customer is the customer an event names: its contact preferences and
// tier, and the snapshot (protobuf JSON) the visits carry on to VisitDue.
type Customer struct {
	ID       string
	Tier     string
	Prefs    contact.Prefs
	Snapshot []byte
}

// CustomerFrom reads the customer of an event. The snapshot keeps no clear
// name, phone or email, even where a producer sent them (intake publishes
// only the masked forms): whether there was a phone or an email stays.
func CustomerFrom(c *typesv1.Customer) (Customer, error) {
	if c.GetName() != "" || c.GetPhone() != "" || c.GetEmail() != "" {
		c = proto.CloneOf(c)
		c.HasPhone, c.HasEmail = c.HasPhone || c.Phone != "", c.HasEmail || c.Email != ""
		c.Name, c.Phone, c.Email = "", "", ""
	}
	snapshot, err := protojson.Marshal(c)
	if err != nil {
		return Customer{}, fmt.Errorf("app: customer: %w", err)
	}
	p := c.GetPreferences()
	prefs := contact.Prefs{TimeZone: p.GetTimeZone(), DislikesCalls: p.GetDislikesCalls()}
	for _, ch := range p.GetOptedOut() {
		prefs.OptedOut = append(prefs.OptedOut, int32(ch))
	}
	for _, w := range p.GetWindows() {
		prefs.Windows = append(prefs.Windows, windowFrom(w))
	}
	return Customer{ID: c.GetId(), Tier: c.GetTier(), Prefs: prefs, Snapshot: snapshot}, nil
}

// updateCustomer applies the preferences the event carries at version (0:
// a snapshot) and returns the customer's effective preferences. A customer
// without an id changes nothing.
func updateCustomer(ctx context.Context, tx pgx.Tx, tenant string, c Customer, version int64, at time.Time, source string) (contact.Prefs, error) {
	if c.ID == "" {
		return contact.Prefs{}, nil
	}
	apply := func(cust *contact.Customer) bool {
		return cust.Update(version, c.Prefs, c.Tier, at)
	}
	if version == 0 {
		// A snapshot: it changes a customer the scheduler knows nothing
		// newer of, which is rare once intake's CustomerUpdated arrived,
		// and one that holds it already (the same snapshot again) not at all.
		got, err := store.UpdateCustomerIfChanged(ctx, tx, tenant, c.ID, source, func(cust contact.Customer) bool {
			return cust.Holds(0, c.Prefs, c.Tier)
		}, apply)
		return got.Effective(), err
	}
	got, err := store.UpdateCustomer(ctx, tx, tenant, c.ID, source, apply)
	return got.Effective(), err
}

// prefsOf returns a customer's effective preferences (none for an unknown customer).
func prefsOf(ctx context.Context, q postgres.Querier, tenant, customerID string) (contact.Prefs, error) {
	if customerID == "" {
		return contact.Prefs{}, nil
	}
	k := store.CustomerKey{Tenant: tenant, Customer: customerID}
	cs, err := store.Customers(ctx, q, []store.CustomerKey{k})
	if err != nil {
		return contact.Prefs{}, err
	}
	return cs[k].Effective(), nil
}

// rulesOf returns the tenant's contact policy (the zero Rules when it has none).
func rulesOf(ctx context.Context, q postgres.Querier, tenant string) (contact.Rules, error) {
	rs, err := store.ContactRules(ctx, q, []string{tenant})
	return rs[tenant], err
}

// or returns t, or def when t is zero.
func or(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}

type dueNowKey struct{}

// dueNow is what insert needs to fire a visit due at once, the App's:
// fireNow fires stored visits in the planning transaction, fireNew decides
// new ones before they are stored (Batch.write), fire (DueNow) wakes the
// firing loop after the commit for any fireNow could not take, now is the
// App's clock. It holds the App alone, so that a context carries it
// without an allocation per message.
type dueNow struct{ a *App }

func (d dueNow) fireNow(ctx context.Context, tx pgx.Tx, ids []string) error {
	return d.a.fireNow(ctx, tx, ids)
}

func (d dueNow) fireNew(ctx context.Context, tx pgx.Tx, vs []visit.Visit) ([]visit.Visit, []Failure, error) {
	return d.a.fireNew(ctx, tx, vs)
}

func (d dueNow) report(fs []Failure) { d.a.reportFailed(fs) }
func (d dueNow) fire()               { d.a.DueNow() }
func (d dueNow) now() time.Time      { return d.a.Now() }

// withDueNow carries what fires visits due at once in ctx to where visits
// are planned (insert); only the running service sets DueNow.
func (a *App) withDueNow(ctx context.Context) context.Context {
	if a.DueNow == nil {
		return ctx
	}
	return context.WithValue(ctx, dueNowKey{}, dueNow{a})
}
