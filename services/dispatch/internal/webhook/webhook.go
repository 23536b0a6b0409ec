// Package webhook serves the providers' delivery webhooks
// (POST /receipts/telnyx): it checks that the provider signed the report,
// reads it (package sender) and records it with app.RecordReceipt.
package webhook

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/huifang/huifang/pkg/httpserver"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/sender"
	"github.com/huifang/huifang/services/dispatch/internal/store"
)

// maxReceiptBytes bounds a webhook's body (Telnyx's are a few KiB).
const maxReceiptBytes = 256 << 10

// Receipts serves the delivery webhooks.
type Receipts struct {
	App *app.App
	Log *slog.Logger
	// TelnyxKey is the Telnyx account's public key (TELNYX_PUBLIC_KEY): a
	// webhook it did not sign, or signed more than sender.TelnyxTolerance
	// ago, is refused (401) and nothing is recorded. Without a key every
	// webhook is refused.
	TelnyxKey ed25519.PublicKey
	// Now is the clock signatures' timestamps are held to; time.Now when nil.
	Now func() time.Time
}

// Handler returns the webhook mux.
func (r *Receipts) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /receipts/telnyx", func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxReceiptBytes))
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "the body is over 256 KiB", http.StatusRequestEntityTooLarge)
			return
		}
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		if err := sender.VerifyTelnyxWebhook(r.TelnyxKey, req.Header, body, r.now()); err != nil {
			// Neither the body nor the headers' values are logged.
			r.Log.InfoContext(req.Context(), "receipt refused", "provider", "telnyx", "err", err)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		rc, final, err := sender.ParseTelnyxWebhook(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if final {
			_, err = r.App.RecordReceipt(req.Context(), "telnyx", rc)
			if err != nil && !errors.Is(err, store.ErrMessageNotFound) {
				r.Log.ErrorContext(req.Context(), "receipt not recorded", "err", err)
				http.Error(w, "not recorded", http.StatusInternalServerError) // the provider retries
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func (r *Receipts) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Serve serves the webhooks on addr until ctx ends, bounded by limits
// (timeouts, requests at once: app.Base's HTTP_* variables).
func (r *Receipts) Serve(ctx context.Context, addr string, limits httpserver.Limits) error {
	srv := httpserver.New(r.Handler(), limits)
	srv.Addr = addr
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutCtx)
		return ctx.Err()
	}
}
