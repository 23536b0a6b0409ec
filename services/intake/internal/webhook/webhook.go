// Package webhook is intake's HTTP adapter for upstream systems that can
// only POST a webhook: POST /v1/services and /v1/services:batch (JSON), and
// the OpenAPI document. It decodes the body and calls the app's ingest
// commands, as the NATS ingress and the gRPC API do.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	"github.com/huifang/huifang/proto/openapi"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/httpserver"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/intake/internal/app"
	"github.com/huifang/huifang/services/intake/internal/grpcapi"
	"github.com/huifang/huifang/services/intake/internal/ingest"
)

// maxBatchBytes bounds the body of a batch; each of its events is held to
// the app's limit (MAX_EVENT_BYTES) on its own, as the body of one event is.
const maxBatchBytes = 16 << 20

// Handler serves POST /v1/services, POST /v1/services:batch and GET
// /openapi.json on a server of their own (WEBHOOK_ADDR set apart).
// The document is intake's OpenAPI document, generated from intake.proto
// (the routes of IngestService and IngestServices are the webhook's); on
// the service's own HTTP port the gateway serves it (app.Runtime.Gateway).
func Handler(a *app.App, log *slog.Logger, guard Guard) http.Handler {
	mux := http.NewServeMux()
	Register(mux.Handle, a, log, guard)
	mux.Handle("GET /openapi.json", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		doc, err := openapi.Document("intake")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}))
	return mux
}

// Guard says who posts and whether they may: *auth.Guard. The webhook takes
// the bearer tokens the gRPC API takes, and holds a post to the rule of
// IngestService (IngestServices for a batch): an integrator, for its own
// tenant and source_system.
//
// A post counts against the caller's rate as a gRPC call does (Admit, the
// same bucket: RATE_LIMIT, RATE_BURST): beyond it, 429 with Retry-After.
type Guard interface {
	AuthenticateHTTP(r *http.Request) (auth.Principal, error)
	Admit(p auth.Principal) (time.Duration, bool)
	Authorize(p auth.Principal, method string, req proto.Message) error
}

// Serve serves the webhook on a port of its own (WEBHOOK_ADDR) until ctx
// ends, then shuts the server down gracefully. The server is bounded by
// limits (timeouts, requests at once: app.Base's HTTP_* variables).
func Serve(ctx context.Context, log *slog.Logger, addr string, limits httpserver.Limits, a *app.App, guard Guard) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("webhook: listen %s: %w", addr, err)
	}
	srv := httpserver.New(Handler(a, log, guard), limits)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	log.InfoContext(ctx, "webhook serving", "addr", l.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("webhook: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("webhook: shutdown: %w", err)
	}
	return nil
}

// Register adds the webhook's routes (POST /v1/services, POST
// /v1/services:batch) through handle, such as the service's own HTTP
// server's grpcserver.Server.Handle beside /healthz and the gateway's /v1/
// (these patterns are more specific: they win over the gateway's routes of
// IngestService and IngestServices). The posts need a bearer token.
func Register(handle func(pattern string, h http.Handler), a *app.App, log *slog.Logger, guard Guard) {
	h := &handler{app: a, log: log, guard: guard}
	handle("POST /v1/services", http.HandlerFunc(h.one))
	handle("POST /v1/services:batch", http.HandlerFunc(h.batch))
}

type handler struct {
	app   *app.App
	log   *slog.Logger
	guard Guard
}

// caller authenticates the request before its body is read (an unknown
// caller leaves nothing behind, not even a rejected input): 401 without a
// valid token, 503 when tokens cannot be checked now; then holds it to the
// caller's rate: 429 with Retry-After (whole seconds) beyond it, the body
// not read either.
func (h *handler) caller(w http.ResponseWriter, r *http.Request) (auth.Principal, bool) {
	p, err := h.guard.AuthenticateHTTP(r)
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		w.Header().Set("WWW-Authenticate", `Bearer realm="huifang"`)
		writeJSON(w, http.StatusUnauthorized, Problem{Error: err.Error()})
		return auth.Principal{}, false
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, Problem{Error: err.Error()})
		return auth.Principal{}, false
	}
	if wait, ok := h.guard.Admit(p); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		writeJSON(w, http.StatusTooManyRequests, Problem{Error: "rate limit: too many posts from this caller; retry after " + wait.Round(time.Millisecond).String()})
		return auth.Principal{}, false
	}
	return p, true
}

// allowed holds a decoded post to the rule of method: 403 when the caller
// may not post it.
func (h *handler) allowed(w http.ResponseWriter, r *http.Request, p auth.Principal, method string, msg proto.Message) bool {
	if err := h.guard.Authorize(p, method, msg); err != nil {
		h.log.InfoContext(r.Context(), "post refused", "path", r.URL.Path, "subject", p.Subject, "tenant", p.Tenant, "err", err)
		writeJSON(w, http.StatusForbidden, Problem{Error: err.Error()})
		return false
	}
	return true
}

// Problem is the body of every error answer.
type Problem struct {
	Error           string      `json:"error"`
	Violations      []Violation `json:"violations,omitempty"`
	RejectedEventID string      `json:"rejected_event_id,omitempty"`
}

// Violation is one broken rule.
type Violation struct {
	Field string `json:"field"`
	Rule  string `json:"rule"`
}

var (
	unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}
	marshal   = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false}
)

// read reads a JSON body of at most limit bytes into msg (reading at most
// limit+1 bytes of it): a larger one is answered 413 with the violation
// (payload: must be at most limit bytes) and kept nowhere. A body that is not
// JSON of the shape is answered 400 and recorded with the refused inputs,
// under the caller's tenant (the one that may replay it), unless it is
// larger than the app's event limit (a batch's): a copy of it must not
// travel onward on the dead-letter subject.
func (h *handler) read(w http.ResponseWriter, r *http.Request, p auth.Principal, limit int, msg proto.Message) ([]byte, bool) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != stream.ContentTypeJSON {
		writeJSON(w, http.StatusUnsupportedMediaType, Problem{Error: "Content-Type must be application/json"})
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeJSON(w, http.StatusRequestEntityTooLarge, problem(ingest.TooLarge(limit), ""))
		return nil, false
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, Problem{Error: "reading the body: " + err.Error()})
		return nil, false
	}
	if bad := decode(body, msg); bad != nil {
		id := ""
		if len(body) <= h.app.EventLimit() {
			var rerr error
			if id, rerr = h.app.RejectRaw(r.Context(), app.RejectRaw{Tenant: p.Tenant, Source: "http", ContentType: stream.ContentTypeJSON, Payload: body, Err: bad}); rerr != nil {
				h.fail(w, r, rerr)
				return nil, false
			}
		}
		writeJSON(w, http.StatusBadRequest, problem(bad, id))
		return nil, false
	}
	return body, true
}

// decode reads a JSON body into msg (protojson, unknown fields ignored): a
// body that is not JSON of msg's shape is bad input naming payload.
func decode(body []byte, msg proto.Message) *invalid.Error {
	if err := unmarshal.Unmarshal(body, msg); err != nil {
		return invalid.New("payload", "must be JSON of the documented shape: "+err.Error())
	}
	return nil
}

func (h *handler) one(w http.ResponseWriter, r *http.Request) {
	p, ok := h.caller(w, r)
	if !ok {
		return
	}
	// The caller must be one who may post at all before its body is read
	// (and, refused, kept): the rule of IngestService for an empty event.
	if !h.allowed(w, r, p, intakev1.IntakeService_IngestService_FullMethodName, &intakev1.IngestServiceRequest{Event: &eventsv1.ServiceCompleted{}}) {
		return
	}
	ev := &eventsv1.ServiceCompleted{}
	body, ok := h.read(w, r, p, h.app.EventLimit(), ev)
	if !ok {
		return
	}
	// The rule of IngestService, held to the event the body is.
	if !h.allowed(w, r, p, intakev1.IntakeService_IngestService_FullMethodName, &intakev1.IngestServiceRequest{Event: ev}) {
		return
	}
	out, err := h.app.IngestService(r.Context(), app.IngestService{Event: ev, Source: "http", Unknown: ingest.UnknownJSON(body)})
	if errors.Is(err, app.ErrConflict) {
		writeJSON(w, http.StatusConflict, Problem{Error: err.Error()})
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if out.Invalid != nil {
		writeJSON(w, http.StatusUnprocessableEntity, problem(out.Invalid, out.RejectedID))
		return
	}
	code := http.StatusCreated
	if out.Duplicate {
		code = http.StatusOK
	}
	writeProto(w, code, grpcapi.IngestServiceResponse(out))
}

func (h *handler) batch(w http.ResponseWriter, r *http.Request) {
	p, ok := h.caller(w, r)
	if !ok {
		return
	}
	if !h.allowed(w, r, p, intakev1.IntakeService_IngestServices_FullMethodName, &intakev1.IngestServicesRequest{}) {
		return
	}
	req := &intakev1.IngestServicesRequest{}
	body, ok := h.read(w, r, p, maxBatchBytes, req)
	if !ok {
		return
	}
	if !h.allowed(w, r, p, intakev1.IntakeService_IngestServices_FullMethodName, req) {
		return
	}
	b, err := h.app.IngestBatch(r.Context(), app.IngestBatch{Events: req.GetEvents(), Source: "http", Unknown: unknownPerEvent(body)})
	if bad, ok := invalid.As(err); ok {
		writeJSON(w, http.StatusBadRequest, problem(bad, ""))
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeProto(w, http.StatusOK, grpcapi.IngestServicesResponse(b))
}

// unknownPerEvent names, per event of a batch body, the JSON keys that are
// no field of a ServiceCompleted (ingest.UnknownJSON).
func unknownPerEvent(body []byte) [][]string {
	var b struct {
		Events []json.RawMessage `json:"events"`
	}
	if json.Unmarshal(body, &b) != nil {
		return nil
	}
	out := make([][]string, len(b.Events))
	for i, ev := range b.Events {
		out[i] = ingest.UnknownJSON(ev)
	}
	return out
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	h.log.ErrorContext(r.Context(), "webhook failed", "path", r.URL.Path, "err", err)
	writeJSON(w, http.StatusServiceUnavailable, Problem{Error: "could not store the event now; retry"})
}

func problem(bad *invalid.Error, rejectedID string) Problem {
	p := Problem{Error: bad.Error(), RejectedEventID: rejectedID}
	for _, v := range bad.Violations {
		p.Violations = append(p.Violations, Violation{Field: v.Field, Rule: v.Rule})
	}
	return p
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeProto(w http.ResponseWriter, code int, m proto.Message) {
	b, err := marshal.Marshal(m)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, Problem{Error: "encoding the answer: " + err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
