package sender

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Telnyx signs every webhook with the account's Ed25519 key: the
// signature (base64) of "<timestamp>|<raw body>" in the first header, the
// Unix seconds it was signed at in the second.
const (
	TelnyxSignatureHeader = "Telnyx-Signature-Ed25519"
	TelnyxTimestampHeader = "Telnyx-Timestamp"
)

// TelnyxTolerance is how far a webhook's timestamp may be from now, either
// way: an older one is a replay (or a delivery too late to trust) and
// refused.
const TelnyxTolerance = 5 * time.Minute

// ErrUnsigned wraps every reason a webhook's signature is refused: missing,
// malformed, not made by the account's key over this body and timestamp,
// or stale.
var ErrUnsigned = errors.New("telnyx webhook: not signed by the account's key")

// ParseTelnyxPublicKey reads the account's public key as Telnyx's portal
// shows it (Keys & Credentials → Public Key): 32 bytes in base64.
func ParseTelnyxPublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("telnyx public key: not base64: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("telnyx public key: %d bytes, want %d (an Ed25519 public key)", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// VerifyTelnyxWebhook checks that body came from Telnyx: the signature in
// h is key's over "<timestamp>|<body>", and the timestamp is within
// TelnyxTolerance of now. Every refusal wraps ErrUnsigned.
func VerifyTelnyxWebhook(key ed25519.PublicKey, h http.Header, body []byte, now time.Time) error {
	if len(key) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: no public key is configured (TELNYX_PUBLIC_KEY)", ErrUnsigned)
	}
	sigText, ts := h.Get(TelnyxSignatureHeader), h.Get(TelnyxTimestampHeader)
	if sigText == "" || ts == "" {
		return fmt.Errorf("%w: the %s and %s headers are required", ErrUnsigned, TelnyxSignatureHeader, TelnyxTimestampHeader)
	}
	sig, err := base64.StdEncoding.DecodeString(sigText)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: %s is not a base64 Ed25519 signature", ErrUnsigned, TelnyxSignatureHeader)
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s is not Unix seconds", ErrUnsigned, TelnyxTimestampHeader)
	}
	msg := make([]byte, 0, len(ts)+1+len(body))
	msg = append(append(append(msg, ts...), '|'), body...)
	if !ed25519.Verify(key, msg, sig) {
		return fmt.Errorf("%w: the signature does not match the body and timestamp", ErrUnsigned)
	}
	// Checked after the signature, so that an unsigned caller learns
	// nothing of the clock; compared in seconds, so no value overflows.
	if d := now.Unix() - secs; d > int64(TelnyxTolerance/time.Second) || d < -int64(TelnyxTolerance/time.Second) {
		return fmt.Errorf("%w: signed at %s, more than %s from now (a replay?)", ErrUnsigned, ts, TelnyxTolerance)
	}
	return nil
}
