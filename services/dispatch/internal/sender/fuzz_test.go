package sender_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/huifang/huifang/services/dispatch/internal/sender"
)

// FuzzParseTelnyxWebhook: whatever body reaches the receipts webhook, it is
// read as a receipt, as a report that is not final, or refused with an
// error wrapping ErrBadWebhook (answered 400); never a panic. A receipt
// names a message id Postgres can look up (at most 128 bytes, no control
// characters) and records at most 200 bytes of the provider's words, valid
// UTF-8 without NUL.
func FuzzParseTelnyxWebhook(f *testing.F) {
	for _, seed := range []string{
		`{"data":{"event_type":"message.finalized","payload":{"id":"m-1","to":[{"status":"delivered"}]}}}`,
		`{"data":{"event_type":"message.finalized","payload":{"id":"m-2","to":[{"status":"delivery_failed"}],"errors":[{"code":"40300","title":"Blocked as spam"}]}}}`,
		`{"data":{"event_type":"message.finalized","payload":{"id":"m-3","to":[]}}}`,
		`{"data":{"event_type":"message.finalized","payload":{"id":"m\u0000"}}}`,
		`{"data":{"event_type":"message.finalized","payload":{"id":"m-4","to":[{"status":"\u0000` + strings.Repeat("é", 150) + `"}]}}}`,
		`{"data":{"event_type":"message.sent","payload":{"id":"m-5"}}}`,
		`{"data":{"event_type":"message.finalized","payload":{}}}`,
		`{"data":null}`,
		`<xml/>`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, final, err := sender.ParseTelnyxWebhook(body)
		switch {
		case err != nil:
			if !errors.Is(err, sender.ErrBadWebhook) {
				t.Fatalf("%v: want an error wrapping ErrBadWebhook", err)
			}
			if final || r != (sender.Receipt{}) {
				t.Fatal("a refused body gave a receipt")
			}
		case !final:
			if r != (sender.Receipt{}) {
				t.Fatal("a report that is not final gave a receipt")
			}
		default:
			if r.ProviderMessageID == "" || len(r.ProviderMessageID) > 128 || strings.ContainsFunc(r.ProviderMessageID, unicode.IsControl) || !utf8.ValidString(r.ProviderMessageID) {
				t.Fatalf("message id %q", r.ProviderMessageID)
			}
			if r.Delivered == (r.Error != "") {
				t.Fatalf("delivered %v with error %q: want one of them", r.Delivered, r.Error)
			}
			if len(r.Error) > 200 || strings.ContainsRune(r.Error, 0) || !utf8.ValidString(r.Error) {
				t.Fatalf("error %q", r.Error)
			}
		}
	})
}

// FuzzVerifyTelnyxWebhook: whatever headers and body come, the check never
// panics and takes only what the account's key signed: a forged signature
// is refused with an error wrapping ErrUnsigned, and the real signature of
// the same timestamp and body is taken (when the timestamp is within
// TelnyxTolerance).
func FuzzVerifyTelnyxWebhook(f *testing.F) {
	seed := make([]byte, ed25519.SeedSize)
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	f.Add("AAAA", "1796115600", []byte(`{}`))
	f.Add("", "", []byte(nil))
	f.Add(strings.Repeat("A", 88), "1796115600", []byte(`{"data":{}}`))
	f.Add("not base64!", "-1", []byte(`x`))
	f.Add(strings.Repeat("A", 86)+"==", "99999999999999999999", []byte(`x`))
	f.Add(strings.Repeat("/", 88), "0", []byte(`x`))
	f.Fuzz(func(t *testing.T, sig, ts string, body []byte) {
		h := http.Header{}
		h.Set(sender.TelnyxSignatureHeader, sig)
		h.Set(sender.TelnyxTimestampHeader, ts)
		err := sender.VerifyTelnyxWebhook(pub, h, body, now)
		if err == nil {
			// A forger would need the private key: only the real
			// signature verifies.
			got, _ := base64.StdEncoding.DecodeString(sig)
			if !ed25519.Verify(pub, append([]byte(ts+"|"), body...), got) {
				t.Fatalf("a signature that is not the key's was taken: %q", sig)
			}
		} else if !errors.Is(err, sender.ErrUnsigned) {
			t.Fatalf("%v: want an error wrapping ErrUnsigned", err)
		}
		// The key's own signature of the same timestamp and body.
		h.Set(sender.TelnyxSignatureHeader, signTelnyxAt(priv, h.Get(sender.TelnyxTimestampHeader), body))
		err = sender.VerifyTelnyxWebhook(pub, h, body, now)
		if err != nil && !errors.Is(err, sender.ErrUnsigned) {
			t.Fatalf("%v: want an error wrapping ErrUnsigned", err)
		}
		if err != nil && !strings.Contains(err.Error(), "from now") && !strings.Contains(err.Error(), "not Unix seconds") && !strings.Contains(err.Error(), "headers are required") {
			t.Fatalf("the key's own signature was refused: %v", err)
		}
	})
}
