package privacy

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMask(t *testing.T) {
	tests := []struct{ in, phone, email string }{
		{"+8613800138000", "138****8000", ""},
		{"13800138000", "138****8000", ""},
		{"+86 138-0013-8000", "138****8000", ""},
		{"+4930123456", "493****3456", ""},
		{"12345", "****45", ""},
		{"", "", ""},
	}
	for _, tc := range tests {
		require.Equal(t, tc.phone, MaskPhone(tc.in), tc.in)
	}
	require.Equal(t, "w***@example.com", MaskEmail("wang@example.com"))
	require.Equal(t, "王***@例子.中国", MaskEmail("王芳@例子.中国"))
	require.Equal(t, "***", MaskEmail("@nobody"))
	require.Equal(t, "", MaskEmail(""))
}

func TestSealOpenAndRotate(t *testing.T) {
	old, err := New(DevKeys, DevHashKey)
	require.NoError(t, err)
	sealed := old.Seal("+8613800138000")
	require.NotContains(t, string(sealed), "13800138000")
	require.NotEqual(t, sealed, old.Seal("+8613800138000"), "a fresh nonce each time")
	plain, err := old.Open("dev", sealed)
	require.NoError(t, err)
	require.Equal(t, "+8613800138000", plain)
	_, err = old.Open("k2", sealed)
	require.ErrorContains(t, err, "unknown key id")
	sealed[len(sealed)-1] ^= 1
	_, err = old.Open("dev", sealed)
	require.Error(t, err, "tampering is detected")

	rotated, err := New("k2:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=,"+DevKeys, DevHashKey)
	require.NoError(t, err)
	require.Equal(t, "k2", rotated.KeyID())
	plain, err = rotated.Open("dev", old.Seal("a@b.c"))
	require.NoError(t, err)
	require.Equal(t, "a@b.c", plain)
	require.Equal(t, old.HashPhone("+86 138 0013 8000"), rotated.HashPhone("+8613800138000"), "search hashes do not depend on the sealing key")
	require.Equal(t, "", old.HashPhone(""))
}

func TestBadKeys(t *testing.T) {
	for _, ring := range []string{"", "nokey", "k1:not-base64!", "k1:c2hvcnQ=", DevKeys + "," + DevKeys} {
		_, err := New(ring, DevHashKey)
		require.Error(t, err, ring)
	}
	_, err := New(DevKeys, "c2hvcnQ=")
	require.ErrorContains(t, err, "16 bytes")
}

func TestSealPayloadAndRotate(t *testing.T) {
	old, err := New(DevKeys, DevHashKey)
	require.NoError(t, err)
	raw := []byte(`{"customer":{"phone":"+8613800138000"}}`)
	sealed := old.SealPayload(raw)
	require.True(t, IsSealed(sealed))
	require.Equal(t, "dev", SealedKeyID(sealed))
	require.NotContains(t, string(sealed), "13800138000")
	require.NotEqual(t, sealed, old.SealPayload(raw), "a random nonce per payload")

	rotated, err := New("k2:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=,"+DevKeys, DevHashKey)
	require.NoError(t, err)
	got, err := rotated.OpenPayload(sealed)
	require.NoError(t, err, "old payloads open with their own key after rotation")
	require.Equal(t, raw, got)
	require.Equal(t, "k2", SealedKeyID(rotated.SealPayload(raw)))

	got, err = old.OpenPayload(raw)
	require.NoError(t, err, "payloads stored before sealing read as they are")
	require.Equal(t, raw, got)
	require.Empty(t, old.SealPayload(nil))

	_, err = old.OpenPayload(rotated.SealPayload(raw))
	require.ErrorContains(t, err, `unknown key id "k2"`)
	tampered := append([]byte{}, sealed...)
	tampered[len(tampered)-1] ^= 1
	_, err = old.OpenPayload(tampered)
	require.Error(t, err)
}

func TestMaskText(t *testing.T) {
	tests := []struct{ in, want string }{
		{`"phone":"+8613800138000"`, `"phone":"138****8000"`},
		{`call 138 0013 8000 or 138-0013-8000`, `call 138****8000 or 138****8000`},
		{`mail wang@example.com now`, `mail w***@example.com now`},
		{`"completed_at":"2026-11-28T10:00:00Z","amount_minor":"68000"`, `"completed_at":"2026-11-28T10:00:00Z","amount_minor":"68000"`},
		{`{"source_event_id":"RO-2026-000123"}`, `{"source_event_id":"RO-2026-000123"}`},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, MaskText(tc.in), tc.in)
	}
}

func TestHashKeyID(t *testing.T) {
	a, err := New(DevKeys, DevHashKey)
	require.NoError(t, err)
	b, err := New(DevKeys, "b3RoZXItaGFzaC1rZXktb3RoZXItaGFzaC1rZXk=")
	require.NoError(t, err)
	require.Len(t, a.HashKeyID(), 16)
	require.NotEqual(t, a.HashKeyID(), b.HashKeyID())
	require.NotContains(t, a.HashKeyID(), DevHashKey)
}
