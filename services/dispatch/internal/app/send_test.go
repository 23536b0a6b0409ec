package app_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/servicetest"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/sender"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/storetest"
	"github.com/huifang/huifang/services/dispatch/internal/task"
	"github.com/huifang/huifang/services/dispatch/internal/webhook"
)

// fakeTelnyx is a local stand-in for POST /v2/messages: it checks the
// bearer key, keeps the first answer per Idempotency-Key (as the provider
// does) and counts what it would have delivered.
type fakeTelnyx struct {
	mu        sync.Mutex
	requests  int
	keys      []string // the Idempotency-Key of every request
	delivered []string // texts, once per key
	to        []string // their numbers
	byKey     map[string]string
	failNext  int // answer 503 to this many requests
}

func (f *fakeTelnyx) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	f.keys = append(f.keys, r.Header.Get("Idempotency-Key"))
	if r.Method != http.MethodPost || r.URL.Path != "/v2/messages" || r.Header.Get("Authorization") != "Bearer KEY" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"errors":[{"code":"10009","title":"Authentication failed"}]}`)
		return
	}
	if f.failNext > 0 {
		f.failNext--
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"errors":[{"code":"10011","title":"Service unavailable"}]}`)
		return
	}
	var body struct{ From, To, Text string }
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.To == "" {
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = io.WriteString(w, `{"errors":[{"code":"40310","title":"Invalid 'to' address"}]}`)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	id, seen := f.byKey[key]
	if !seen {
		id = "tx-" + key
		f.byKey[key] = id
		f.delivered = append(f.delivered, body.Text)
		f.to = append(f.to, body.To)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"data":{"id":"`+id+`","record_type":"message","to":[{"phone_number":"`+body.To+`","status":"queued"}]}}`)
}

type sendBundle struct {
	pool  *pgxpool.Pool
	clock *storetest.Clock
	fake  *fakeTelnyx
	a     *app.App
}

func setupSend(t *testing.T) sendBundle {
	t.Helper()
	return setupSendOn(t, storetest.Pool(t))
}

// setupSendOn is setupSend on a database the test opened.
func setupSendOn(t *testing.T, pool *pgxpool.Pool) sendBundle {
	t.Helper()
	clock := storetest.NewClock(t0)
	fake := &fakeTelnyx{byKey: map[string]string{}}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	tx := &sender.Telnyx{BaseURL: srv.URL, APIKey: "KEY", From: "+8610000000"}
	a := &app.App{DB: pool, Relay: nop{}, Log: servicetest.Logger(), Now: clock.Now,
		Send: app.Sending{Sender: sender.ByChannel{SMS: tx, Email: &sender.Local{Pool: pool, Log: servicetest.Logger(), Now: clock.Now}},
			Contacts: storetest.NewContacts(), Lease: 2 * time.Minute, Retry: message.Retry{Backoff: time.Minute, MaxTries: 3}, Batch: 10}}
	return sendBundle{pool: pool, clock: clock, fake: fake, a: a}
}

// addSMS adds an SMS task of policy p-1 for a customer with the seed-002 variables.
func (b sendBundle) addSMS(t *testing.T, visit string, opts ...func(*task.Task)) task.Task {
	t.Helper()
	ctx := context.Background()
	x := task.Task{ID: outbox.NewEventID(), Tenant: "default", VisitID: visit, Channel: typesv1.Channel_CHANNEL_SMS, Automatic: true,
		PolicyID: "p-1", Customer: task.Customer{ID: "c-1", NameMasked: "王*", PhoneMasked: "*******8000", HasPhone: true, EmailMasked: "w***@example.com", HasEmail: true},
		DueAt: t0, Deadline: t0.Add(72 * time.Hour), Status: task.StatusOpen, CreatedAt: t0}
	for _, o := range opts {
		o(&x)
	}
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		_, err := store.CreateTask(ctx, tx, x)
		return err
	}))
	return x
}

func (b sendBundle) seed002(t *testing.T) {
	t.Helper()
	_, err := b.a.UpsertTemplate(context.Background(), message.Template{Tenant: "default", PolicyID: "p-1", Channel: typesv1.Channel_CHANNEL_SMS,
		Greeting: "{name}您好！", Body: "您预约的看房时间是明天上午十点。", Preset: message.Preset002})
	require.NoError(t, err)
	require.NoError(t, b.a.SetCustomerVariables(context.Background(), "default", "c-1",
		map[string]string{"project": "阳光花园", "booking_number": "A-1024", "advisor": "陈静"}))
}

func (b sendBundle) task(t *testing.T, id string) task.Task {
	t.Helper()
	x, err := b.a.Task(context.Background(), "default", id)
	require.NoError(t, err)
	return x
}

func (b sendBundle) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), q, args...).Scan(&n))
	return n
}

// TestSeed002SMS: the SMS starts with a greeting and ends with the
// project's name, the booking number and the advisor (seed 002).
func TestSeed002SMS(t *testing.T) {
	b := setupSend(t)
	b.seed002(t)
	x := b.addSMS(t, "v-1")
	n, err := b.a.SendDue(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, []string{"王芳您好！您预约的看房时间是明天上午十点。【阳光花园】预约号：A-1024，顾问：陈静"}, b.fake.delivered)
	require.Equal(t, task.StatusSent, b.task(t, x.ID).Status)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.SubjectVisitAttempted))
}

// TestSMSIdempotentAfterCrash: a sender that dies after the provider took
// the message and before it recorded that leaves the message "sending";
// after its lease another round sends it again with the same idempotency
// key, and the customer gets one SMS.
func TestSMSIdempotentAfterCrash(t *testing.T) {
	b := setupSend(t)
	b.seed002(t)
	ctx := context.Background()
	x := b.addSMS(t, "v-1")

	job, ok, err := b.a.ClaimSend(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	_, err = b.a.Send.Sender.Send(ctx, sender.Message{IdempotencyKey: job.Message.IdempotencyKey, Channel: job.Message.Channel,
		To: "+8613800138000", Body: message.Greet(job.Message.Body, "王芳")})
	require.NoError(t, err)
	// The process dies here: Finish never runs.

	n, err := b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "the lease still holds")
	b.clock.Advance(2 * time.Minute)
	n, err = b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	require.Equal(t, 2, b.fake.requests, "the provider was asked twice")
	require.Len(t, b.fake.delivered, 1, "and sent once")
	require.Equal(t, task.StatusSent, b.task(t, x.ID).Status)
	var key, status string
	var tries int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT idempotency_key, status, tries FROM messages WHERE task_id = $1`, x.ID).Scan(&key, &status, &tries))
	require.Equal(t, job.Message.IdempotencyKey, key)
	require.Equal(t, "sent", status)
	require.Equal(t, 2, tries)
}

// TestLocalSenderIdempotentAfterCrash: the development sender records a
// message once per key too.
func TestLocalSenderIdempotentAfterCrash(t *testing.T) {
	b := setupSend(t)
	ctx := context.Background()
	b.seed002(t)
	x := b.addSMS(t, "v-1", func(x *task.Task) { x.Channel = typesv1.Channel_CHANNEL_EMAIL })
	job, ok, err := b.a.ClaimSend(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "w***@example.com", job.Message.To)
	local := b.a.Send.Sender.(sender.ByChannel).Email
	_, err = local.Send(ctx, sender.Message{IdempotencyKey: job.Message.IdempotencyKey, Channel: job.Message.Channel, To: "wf@example.com",
		Body: message.Greet(job.Message.Body, "王芳"), Shown: sender.Shown{To: job.Message.To, Body: job.Message.Body}})
	require.NoError(t, err)
	b.clock.Advance(2 * time.Minute)
	_, err = b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM local_sent_messages`))
	require.Equal(t, task.StatusSent, b.task(t, x.ID).Status)
}

// TestSentThroughIntakeKeepingNoContact: the address and the greeted name
// come from the contact book (intake) at the moment of sending, on behalf
// of the message; the provider gets them, while what dispatch keeps (the
// message, the local sender's record) holds the address masked and the
// name as a placeholder.
func TestSentThroughIntakeKeepingNoContact(t *testing.T) {
	b := setupSend(t)
	ctx := context.Background()
	b.seed002(t)
	x := b.addSMS(t, "v-1")
	n, err := b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, task.StatusSent, b.task(t, x.ID).Status)
	require.Len(t, b.fake.delivered, 1)
	require.Equal(t, []string{"+8613800138000"}, b.fake.to)
	require.True(t, strings.HasPrefix(b.fake.delivered[0], "王芳您好"), b.fake.delivered[0])
	asked := b.a.Send.Contacts.(*storetest.Contacts).Asked()
	require.Len(t, asked, 1)
	require.Equal(t, "c-1", asked[0].CustomerID)
	require.True(t, strings.HasPrefix(asked[0].OnBehalfOf, "message:"), asked[0].OnBehalfOf)
	var to, body string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT recipient, body FROM messages WHERE task_id = $1`, x.ID).Scan(&to, &body))
	require.Equal(t, "*******8000", to)
	require.True(t, strings.HasPrefix(body, message.NamePlaceholder+"您好"), body)
	require.NotContains(t, body, "王芳")
}

// TestSendWaitsOutIntake: while intake cannot give the contact, the message
// waits (Postpone) and its tries are not used up; once intake answers, it
// is sent. A customer intake no longer holds (erased) ends unreachable.
func TestSendWaitsOutIntake(t *testing.T) {
	b := setupSend(t)
	ctx := context.Background()
	b.seed002(t)
	book := b.a.Send.Contacts.(*storetest.Contacts)
	book.Down(true)
	x := b.addSMS(t, "v-1")
	for range 5 { // more rounds than MaxTries (3)
		n, err := b.a.SendDue(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		got := b.task(t, x.ID)
		require.Equal(t, task.StatusOpen, got.Status)
		require.True(t, got.AvailableAt.Equal(b.clock.Now().Add(app.DefaultPostpone)), "next at %s", got.AvailableAt)
		var tries int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT tries FROM messages WHERE task_id = $1`, x.ID).Scan(&tries))
		require.Zero(t, tries, "no try counted")
		b.clock.Advance(app.DefaultPostpone)
	}
	require.Empty(t, b.fake.delivered)
	book.Down(false)
	n, err := b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, task.StatusSent, b.task(t, x.ID).Status)

	require.NoError(t, b.a.SetCustomerVariables(ctx, "default", "c-erased",
		map[string]string{"project": "阳光花园", "booking_number": "A-1025", "advisor": "陈静"}))
	gone := b.addSMS(t, "v-2", func(x *task.Task) { x.Customer.ID = "c-erased" })
	n, err = b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, task.StatusUnreachable, b.task(t, gone.ID).Status)
}

// TestSendRetriesWithBackoff: provider outages are retried after 1, then 2
// minutes; after the third failure the visit is unreachable.
func TestSendRetriesWithBackoff(t *testing.T) {
	b := setupSend(t)
	b.seed002(t)
	ctx := context.Background()
	b.fake.failNext = 10
	x := b.addSMS(t, "v-1")
	for i, wait := range []time.Duration{time.Minute, 2 * time.Minute} {
		n, err := b.a.SendDue(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n, "try %d", i+1)
		got := b.task(t, x.ID)
		require.Equal(t, task.StatusOpen, got.Status)
		require.True(t, got.AvailableAt.Equal(b.clock.Now().Add(wait)), "try %d: next at %s", i+1, got.AvailableAt)
		b.clock.Advance(wait - time.Second)
		n, err = b.a.SendDue(ctx)
		require.NoError(t, err)
		require.Zero(t, n, "not before the backoff")
		b.clock.Advance(time.Second)
	}
	_, err := b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Equal(t, task.StatusUnreachable, b.task(t, x.ID).Status)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.SubjectVisitUnreachable))
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.SubjectVisitAttempted))
	require.Equal(t, 3, b.count(t, `SELECT tries FROM messages`))
}

// TestUnrenderableAndUnaddressable: a message with a missing variable ends
// failed; a customer without a phone is unreachable; neither reaches the provider.
func TestUnrenderableAndUnaddressable(t *testing.T) {
	b := setupSend(t)
	ctx := context.Background()
	b.seed002(t)
	noVars := b.addSMS(t, "v-1", func(x *task.Task) { x.Customer.ID = "c-2" })
	noPhone := b.addSMS(t, "v-2", func(x *task.Task) { x.Customer.HasPhone = false })
	_, err := b.a.SendDue(ctx)
	require.NoError(t, err)
	require.Equal(t, task.StatusFailed, b.task(t, noVars.ID).Status)
	require.Equal(t, task.StatusUnreachable, b.task(t, noPhone.ID).Status)
	require.Zero(t, b.fake.requests)
}

func TestDeliveryReceipt(t *testing.T) {
	b := setupSend(t)
	b.seed002(t)
	ctx := context.Background()
	x := b.addSMS(t, "v-1")
	_, err := b.a.SendDue(ctx)
	require.NoError(t, err)
	var id string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT provider_message_id FROM messages WHERE task_id = $1`, x.ID).Scan(&id))

	hook := `{"data":{"event_type":"message.finalized","payload":{"id":"` + id + `","to":[{"status":"delivered"}]}}}`
	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	srv := httptest.NewServer((&webhook.Receipts{App: b.a, Log: servicetest.Logger(), TelnyxKey: pub}).Handler())
	defer srv.Close()
	send := func(signed bool) int {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/receipts/telnyx", strings.NewReader(hook))
		require.NoError(t, err)
		if signed {
			ts := strconv.FormatInt(time.Now().Unix(), 10)
			req.Header.Set("telnyx-signature-ed25519", base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte(ts+"|"+hook))))
			req.Header.Set("telnyx-timestamp", ts)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	// Unsigned, the report is refused and nothing is recorded.
	require.Equal(t, http.StatusUnauthorized, send(false))
	require.Equal(t, task.StatusSent, b.task(t, x.ID).Status)
	for range 2 { // a provider may send a webhook twice
		require.Equal(t, http.StatusNoContent, send(true))
	}
	require.Equal(t, task.StatusDelivered, b.task(t, x.ID).Status)
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM outbox WHERE subject = $1`, stream.SubjectVisitAttempted), "sent, then delivered once")

	_, err = b.a.RecordReceipt(ctx, "telnyx", sender.Receipt{ProviderMessageID: "nope"})
	require.True(t, errors.Is(err, store.ErrMessageNotFound))
}

func TestTelnyxPermanentError(t *testing.T) {
	srv := httptest.NewServer(&fakeTelnyx{byKey: map[string]string{}})
	defer srv.Close()
	_, err := (&sender.Telnyx{BaseURL: srv.URL, APIKey: "wrong"}).Send(context.Background(),
		sender.Message{IdempotencyKey: "k", Channel: typesv1.Channel_CHANNEL_SMS, To: "+1", Body: "x"})
	require.True(t, sender.IsPermanent(err), "401 is not retried: %v", err)
	require.Contains(t, err.Error(), "Authentication failed")
}

// TestBuiltinTemplate: a policy without a template gets the built-in one,
// which needs only the customer's name.
func TestBuiltinTemplate(t *testing.T) {
	b := setupSend(t)
	b.addSMS(t, "v-1", func(x *task.Task) { x.PolicyID = "p-other" })
	_, err := b.a.SendDue(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"王芳您好！感谢您选择我们的服务，如对本次服务有任何意见，欢迎随时联系我们。"}, b.fake.delivered)
}

// TestMessagesInScope: an agent reads the messages of a task assigned to it
// only, a leader those of the groups it oversees, a director any; an agent
// or leader must name the task (the texts carry the customer's number).
func TestMessagesInScope(t *testing.T) {
	b := setupSend(t)
	b.seed002(t)
	mine := b.addSMS(t, "v-1", func(x *task.Task) { x.AgentID, x.Group = "a-1", "g-east" })
	other := b.addSMS(t, "v-2", func(x *task.Task) { x.AgentID, x.Group = "a-2", "g-west" })
	_, err := b.a.SendDue(context.Background())
	require.NoError(t, err)
	for _, x := range []task.Task{mine, other} { // as a claim or reassignment leaves them
		_, err := b.pool.Exec(context.Background(), `UPDATE tasks SET agent_id = $2 WHERE id = $1`, x.ID, x.AgentID)
		require.NoError(t, err)
	}
	as := func(p auth.Principal) context.Context { return auth.With(context.Background(), p) }
	agent := auth.Principal{Subject: "u-1", Tenant: "default", Roles: []auth.Role{auth.Agent}, AgentID: "a-1"}

	msgs, err := b.a.ListMessages(as(agent), "default", mine.ID, "", 10)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	_, err = b.a.ListMessages(as(agent), "default", other.ID, "", 10)
	require.ErrorIs(t, err, auth.ErrPermissionDenied, "another agent's task")
	_, err = b.a.ListMessages(as(agent), "default", "", "", 10)
	require.ErrorIs(t, err, auth.ErrPermissionDenied, "every task's messages")

	// The leader of group g-east sees east's task, not west's.
	_, err = b.a.UpsertAgent(context.Background(), task.Agent{Tenant: "default", ID: "l-1", Name: "lead", Role: task.RoleLeader, Groups: []string{"g-east"}})
	require.NoError(t, err)
	leader := auth.Principal{Subject: "u-2", Tenant: "default", Roles: []auth.Role{auth.Leader}, AgentID: "l-1"}
	_, err = b.a.ListMessages(as(leader), "default", mine.ID, "", 10)
	require.NoError(t, err)
	_, err = b.a.ListMessages(as(leader), "default", other.ID, "", 10)
	require.ErrorIs(t, err, auth.ErrPermissionDenied)

	director := auth.Principal{Subject: "u-3", Tenant: "default", Roles: []auth.Role{auth.Director}}
	msgs, err = b.a.ListMessages(as(director), "default", "", "", 10)
	require.NoError(t, err)
	require.Len(t, msgs, 2)
}

// A sending round that finds nothing due wrote nothing and wakes no relay
// (an idle dispatch's relay only looks, issue 15); a round that sent does.
func TestAnIdleSendingRoundWakesNoRelay(t *testing.T) {
	b := setupSend(t)
	var w servicetest.Wakes
	b.a.Relay = &w
	n, err := b.a.SendDue(context.Background())
	require.NoError(t, err)
	require.Zero(t, n)
	require.Zero(t, w.Count(), "nothing claimed, nothing to publish")
	b.seed002(t)
	b.addSMS(t, "v-1")
	w.Reset()
	n, err = b.a.SendDue(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Positive(t, w.Count(), "its events wait in the outbox")
}
