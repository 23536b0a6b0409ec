package privacy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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

func TestHashKeyID(t *testing.T) {
	a, err := New(DevKeys, DevHashKey)
	require.NoError(t, err)
	b, err := New(DevKeys, "b3RoZXItaGFzaC1rZXktb3RoZXItaGFzaC1rZXk=")
	require.NoError(t, err)
	require.Len(t, a.HashKeyID(), 16)
	require.NotEqual(t, a.HashKeyID(), b.HashKeyID())
	require.NotContains(t, a.HashKeyID(), DevHashKey)

	// The id of the hashes of the whole HMAC (before they kept 64 bits):
	// rows that hold them are stale, re-hashed at start as after a change
	// of HASH_KEY.
	key, err := base64.StdEncoding.DecodeString(DevHashKey)
	require.NoError(t, err)
	m := hmac.New(sha256.New, key)
	m.Write([]byte("key-id\x00huifang"))
	require.NotEqual(t, hex.EncodeToString(m.Sum(nil))[:16], a.HashKeyID())
}

// The search hashes keep 64 bits of the HMAC: 16 hex digits, a different
// value for a different input or key.
func TestHashLength(t *testing.T) {
	a, err := New(DevKeys, DevHashKey)
	require.NoError(t, err)
	b, err := New(DevKeys, "b3RoZXItaGFzaC1rZXktb3RoZXItaGFzaC1rZXk=")
	require.NoError(t, err)
	for _, h := range [][]string{{a.HashPhone("+8613800138000"), a.HashEmail("a@example.com")}, a.SearchHashes("王芳", "+8613800138000")} {
		for _, x := range h {
			require.Len(t, x, 16)
			require.Regexp(t, "^[0-9a-f]{16}$", x)
		}
	}
	require.NotEqual(t, a.HashPhone("+8613800138000"), a.HashPhone("+8613800138001"))
	require.NotEqual(t, a.HashPhone("+8613800138000"), b.HashPhone("+8613800138000"))
}

// A hash is the HMAC of its kind and value alone, however many were made
// before it and on however many goroutines (the cipher reuses its HMACs).
func TestHashReusedMACs(t *testing.T) {
	c, err := New(DevKeys, DevHashKey)
	require.NoError(t, err)
	key, err := base64.StdEncoding.DecodeString(DevHashKey)
	require.NoError(t, err)
	want := func(kind, v string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(kind + "\x00" + v))
		return hex.EncodeToString(m.Sum(nil))[:16]
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				phone := fmt.Sprintf("+86138%04d%04d", g, i)
				assert.Equal(t, want("phone", phone), c.HashPhone(phone))
				assert.Equal(t, want("email", fmt.Sprintf("c%d-%d@example.com", g, i)), c.HashEmail(fmt.Sprintf("C%d-%d@example.com ", g, i)))
			}
		})
	}
	wg.Wait()
}
