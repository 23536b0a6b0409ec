package grpcapi_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/intake/internal/app"
	"github.com/huifang/huifang/services/intake/internal/privacy"
)

// Seeds 000, 001 (customer information is confidential): the raw payload of a
// refused input is encrypted at rest with the key ring (key id inside, for
// rotation), and the API shows it masked; a replay reads it decrypted.
func TestRejectedPayloadSealedAtRestAndMasked(t *testing.T) {
	ctx, srv := setup(t)
	_, err := srv.IngestService(ctx, &intakev1.IngestServiceRequest{Event: event(t,
		`{"source_system":"erp","source_event_id":"e-1","service_type":"trade_in","completed_at":"2026-11-28T10:00:00Z",
		  "customer":{"external_id":"c-1","phone":"+8613800138000","email":"wang@example.com"},"attributes":{"note":"call 13900139000"}}`)})
	require.Error(t, err)
	var stored []byte
	require.NoError(t, srv.App.DB.QueryRow(ctx, `SELECT payload FROM rejected_events`).Scan(&stored))
	require.True(t, privacy.IsSealed(stored))
	require.Equal(t, "dev", privacy.SealedKeyID(stored))
	for _, secret := range []string{"13800138000", "wang@example.com", "13900139000"} {
		require.False(t, bytes.Contains(stored, []byte(secret)), secret)
	}

	list, err := srv.ListRejectedEvents(ctx, &intakev1.ListRejectedEventsRequest{})
	require.NoError(t, err)
	require.Len(t, list.RejectedEvents, 1)
	require.True(t, list.RejectedEvents[0].Masked)
	require.False(t, bytes.Contains(list.RejectedEvents[0].Payload, []byte("13800138000")))
	id := list.RejectedEvents[0].Id

	got, err := srv.GetRejectedEvent(ctx, &intakev1.GetRejectedEventRequest{Id: id})
	require.NoError(t, err)
	require.True(t, got.RejectedEvent.Masked)
	require.Equal(t, "*******8000", got.Decoded.Customer.Phone)
	require.Equal(t, "w***@example.com", got.Decoded.Customer.Email)
	require.Equal(t, "call *******9000", got.Decoded.Attributes["note"])
	require.Equal(t, "trade_in", got.Decoded.ServiceType)
	require.False(t, bytes.Contains(got.RejectedEvent.Payload, []byte("13800138000")))
	require.True(t, bytes.Contains(got.RejectedEvent.Payload, []byte("trade_in")), "the masked payload is the event encoded again")

	// The replay reads the decrypted payload.
	_, err = srv.RegisterServiceType(ctx, &intakev1.RegisterServiceTypeRequest{Name: "trade_in"})
	require.NoError(t, err)
	res, err := srv.ReplayRejectedEvent(ctx, &intakev1.ReplayRejectedEventRequest{Id: id})
	require.NoError(t, err)
	c, err := srv.GetCustomer(ctx, &intakev1.GetCustomerRequest{Id: res.CustomerId})
	require.NoError(t, err)
	require.Equal(t, "*******8000", c.Customer.PhoneMasked)
}

// A payload that does not decode is sealed too, and masked as text.
func TestUndecodableRejectedPayloadMaskedAsText(t *testing.T) {
	ctx, srv := setup(t)
	raw := []byte(`{"customer":{"phone":"+8613800138000","email":"li@example.com"}, broken`)
	id, err := srv.App.RejectRaw(ctx, app.RejectRaw{Source: "http", ContentType: stream.ContentTypeJSON, Payload: raw, Err: invalid.New("payload", "must be JSON")})
	require.NoError(t, err)
	got, err := srv.GetRejectedEvent(ctx, &intakev1.GetRejectedEventRequest{Id: id})
	require.NoError(t, err)
	require.Nil(t, got.Decoded)
	require.Equal(t, `{"customer":{"phone":"*******8000","email":"l***@example.com"}, broken`, string(got.RejectedEvent.Payload))
	rej, err := srv.App.GetRejected(ctx, "default", id)
	require.NoError(t, err)
	require.Equal(t, string(raw), string(rej.Payload), "kept as it came, for the replay")
}

// Rows refused before sealing are read as they are and sealed at start.
func TestLegacyRejectedPayloadsAreSealed(t *testing.T) {
	ctx, srv := setup(t)
	raw := []byte(`{"customer":{"phone":"+8613800138000"}}`)
	_, err := srv.App.DB.Exec(ctx, `INSERT INTO rejected_events (id, source, reason, content_type, payload) VALUES ('old', 'grpc', 'x', 'application/json', $1)`, raw)
	require.NoError(t, err)
	got, err := srv.App.GetRejected(ctx, "default", "old")
	require.NoError(t, err)
	require.Equal(t, raw, got.Payload)

	n, err := srv.App.SealLegacyRejected(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = srv.App.SealLegacyRejected(ctx, 1)
	require.NoError(t, err)
	require.Zero(t, n, "sealed rows are left alone")
	var stored []byte
	require.NoError(t, srv.App.DB.QueryRow(ctx, `SELECT payload FROM rejected_events WHERE id = 'old'`).Scan(&stored))
	require.True(t, privacy.IsSealed(stored))
	got, err = srv.App.GetRejected(ctx, "default", "old")
	require.NoError(t, err)
	require.Equal(t, raw, got.Payload)
}

// A payload whose key left the ring is listed without its payload, and its
// replay fails instead of the whole listing.
func TestRejectedPayloadWithRetiredKey(t *testing.T) {
	ctx, srv := setup(t)
	retired, err := privacy.New("k9:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", privacy.DevHashKey)
	require.NoError(t, err)
	_, err = srv.App.DB.Exec(ctx, `INSERT INTO rejected_events (id, source, reason, content_type, payload) VALUES ('gone', 'grpc', 'x', 'application/json', $1)`,
		retired.SealPayload([]byte(`{"customer":{"phone":"+8613800138000"}}`)))
	require.NoError(t, err)
	list, err := srv.ListRejectedEvents(ctx, &intakev1.ListRejectedEventsRequest{})
	require.NoError(t, err)
	require.Len(t, list.RejectedEvents, 1)
	require.Empty(t, list.RejectedEvents[0].Payload)
	_, err = srv.ReplayRejectedEvent(ctx, &intakev1.ReplayRejectedEventRequest{Id: "gone"})
	require.ErrorContains(t, err, `unknown key id "k9"`)
	res, err := srv.ReplayRejectedEvent(ctx, &intakev1.ReplayRejectedEventRequest{Id: "gone", Fixed: event(t,
		`{"source_system":"erp","source_event_id":"e-9","service_type":"repair","completed_at":"2026-11-28T10:00:00Z","customer":{"external_id":"c-9","phone":"+8613800138000"}}`)})
	require.NoError(t, err, "a fixed event replaces what no longer opens")
	require.NotEmpty(t, res.ServiceId)
	n, err := srv.App.SealLegacyRejected(ctx, 10)
	require.NoError(t, err)
	require.Zero(t, n, "a sealed payload is not sealed twice")
}
