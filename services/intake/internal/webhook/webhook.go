// Package webhook serves intake's HTTP JSON endpoint for upstream systems
// that can only POST a webhook, and its OpenAPI document. Requests end in the
// same pipeline as the NATS ingress and the gRPC API.
package webhook

import (
	_ "embed"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/intake/internal/grpcapi"
	"github.com/huifang/huifang/services/intake/internal/pipeline"
)

// OpenAPI is the OpenAPI 3 document of the webhook.
//
//go:embed openapi.json
var OpenAPI []byte

// Body limits.
const (
	maxEventBytes = 1 << 20
	maxBatchBytes = 16 << 20
)

// Handler serves POST /v1/services, POST /v1/services:batch and GET
// /openapi.json on a server of their own (WEBHOOK_ADDR set apart).
func Handler(p *pipeline.Pipeline, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	Register(mux.Handle, p, log)
	return mux
}

// Register adds the webhook's routes (POST /v1/services, POST
// /v1/services:batch, GET /openapi.json) through handle, such as the
// service's own HTTP server's grpcserver.Server.Handle beside /healthz.
func Register(handle func(pattern string, h http.Handler), p *pipeline.Pipeline, log *slog.Logger) {
	h := &handler{p: p, log: log}
	handle("POST /v1/services", http.HandlerFunc(h.one))
	handle("POST /v1/services:batch", http.HandlerFunc(h.batch))
	handle("GET /openapi.json", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(OpenAPI)
	}))
}

type handler struct {
	p   *pipeline.Pipeline
	log *slog.Logger
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

func (h *handler) read(w http.ResponseWriter, r *http.Request, limit int64, msg proto.Message) bool {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != stream.ContentTypeJSON {
		writeJSON(w, http.StatusUnsupportedMediaType, Problem{Error: "Content-Type must be application/json"})
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeJSON(w, http.StatusRequestEntityTooLarge, Problem{Error: "body too large"})
		return false
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, Problem{Error: "reading the body: " + err.Error()})
		return false
	}
	if err := unmarshal.Unmarshal(body, msg); err != nil {
		bad := invalid.New("payload", "must be JSON of the documented shape: "+err.Error())
		id, rerr := h.p.RejectRaw(r.Context(), "http", stream.ContentTypeJSON, body, bad)
		if rerr != nil {
			h.fail(w, r, rerr)
			return false
		}
		writeJSON(w, http.StatusBadRequest, problem(bad, id))
		return false
	}
	return true
}

func (h *handler) one(w http.ResponseWriter, r *http.Request) {
	ev := &eventsv1.ServiceCompleted{}
	if !h.read(w, r, maxEventBytes, ev) {
		return
	}
	out, err := h.p.Ingest(r.Context(), ev, "http")
	if errors.Is(err, pipeline.ErrConflict) {
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
	writeProto(w, code, &intakev1.IngestServiceResponse{ServiceId: out.ServiceID, CustomerId: out.CustomerID, Duplicate: out.Duplicate})
}

func (h *handler) batch(w http.ResponseWriter, r *http.Request) {
	req := &intakev1.IngestServicesRequest{}
	if !h.read(w, r, maxBatchBytes, req) {
		return
	}
	resp, err := grpcapi.IngestBatch(r.Context(), h.p, req.GetEvents(), "http")
	if bad, ok := invalid.As(err); ok {
		writeJSON(w, http.StatusBadRequest, problem(bad, ""))
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeProto(w, http.StatusOK, resp)
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
