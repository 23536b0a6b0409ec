package privacy

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const otherKey = "k2:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

func ring(t *testing.T, keys string) *Cipher {
	t.Helper()
	c, err := New(keys, DevHashKey)
	require.NoError(t, err)
	return c
}

// Each tenant has a KEK of its own: a key wrapped for one tenant does not
// unwrap for another, nor with other additional data, nor after tampering;
// after a rotation the old key id still unwraps.
func TestRingWrapper(t *testing.T) {
	ctx := context.Background()
	w := ring(t, DevKeys).Wrapper()
	dek := NewDataKey()
	aad := DataKeyAAD("c-1", 1)
	id, wrapped, err := w.Wrap(ctx, "t1", dek, aad)
	require.NoError(t, err)
	require.Equal(t, "dev", id)
	require.NotContains(t, string(wrapped), string(dek))

	got, err := w.Unwrap(ctx, "t1", "dev", wrapped, aad)
	require.NoError(t, err)
	require.Equal(t, dek, got)
	_, err = w.Unwrap(ctx, "t2", "dev", wrapped, aad)
	require.ErrorIs(t, err, ErrOpen, "another tenant's KEK")
	_, err = w.Unwrap(ctx, "t1", "dev", wrapped, DataKeyAAD("c-2", 1))
	require.ErrorIs(t, err, ErrOpen, "another customer's key")
	_, err = w.Unwrap(ctx, "t1", "dev", wrapped, DataKeyAAD("c-1", 2))
	require.ErrorIs(t, err, ErrOpen, "another version")
	_, err = w.Unwrap(ctx, "t1", "k2", wrapped, aad)
	require.ErrorIs(t, err, ErrUnknownKey)
	tampered := append([]byte{}, wrapped...)
	tampered[len(tampered)-1] ^= 1
	_, err = w.Unwrap(ctx, "t1", "dev", tampered, aad)
	require.ErrorIs(t, err, ErrOpen)

	rotated := ring(t, otherKey+","+DevKeys).Wrapper()
	require.Equal(t, "k2", rotated.CurrentKeyID())
	got, err = rotated.Unwrap(ctx, "t1", "dev", wrapped, aad)
	require.NoError(t, err, "the old key still unwraps after a rotation")
	require.Equal(t, dek, got)
	id, rewrapped, err := rotated.Wrap(ctx, "t1", dek, aad)
	require.NoError(t, err)
	require.Equal(t, "k2", id)
	_, err = w.Unwrap(ctx, "t1", "k2", rewrapped, aad)
	require.ErrorIs(t, err, ErrUnknownKey)
	require.True(t, rotated.HasKey("dev"))
	require.False(t, w.HasKey("k2"))
}

// A field opens only as what it was sealed as: its tenant, customer, field
// and data key version.
func TestDataKeyBindsFields(t *testing.T) {
	k, err := OpenDataKey(NewDataKey())
	require.NoError(t, err)
	aad := FieldAAD("t1", "c-1", "phone", 1)
	sealed := k.Seal("+8613800138000", aad)
	require.NotContains(t, string(sealed), "13800138000")
	require.NotEqual(t, sealed, k.Seal("+8613800138000", aad), "a fresh nonce each time")
	got, err := k.Open(sealed, aad)
	require.NoError(t, err)
	require.Equal(t, "+8613800138000", got)
	for _, other := range [][]byte{
		FieldAAD("t2", "c-1", "phone", 1),
		FieldAAD("t1", "c-2", "phone", 1),
		FieldAAD("t1", "c-1", "email", 1),
		FieldAAD("t1", "c-1", "phone", 2),
		FieldAAD("t1", "c-1p", "hone", 1), // framing: no two lists of parts alike
	} {
		_, err := k.Open(sealed, other)
		require.ErrorIs(t, err, ErrOpen)
	}
	other, err := OpenDataKey(NewDataKey())
	require.NoError(t, err)
	_, err = other.Open(sealed, aad)
	require.ErrorIs(t, err, ErrOpen, "another customer's key")
	require.Nil(t, k.Seal("", aad))
	got, err = k.Open(nil, aad)
	require.NoError(t, err)
	require.Empty(t, got)
	_, err = OpenDataKey([]byte("short"))
	require.Error(t, err)
}

func TestKeyCache(t *testing.T) {
	c := NewKeyCache(2)
	k, err := OpenDataKey(NewDataKey())
	require.NoError(t, err)
	c.Put("t", "a", 1, []byte("wa"), k)
	got, ok := c.Get("t", "a", 1, []byte("wa"))
	require.True(t, ok)
	require.Same(t, k, got)
	_, ok = c.Get("t", "a", 2, []byte("wa"))
	require.False(t, ok, "another version")
	_, ok = c.Get("t", "a", 1, []byte("other"))
	require.False(t, ok, "another wrapped key")
	_, ok = c.Get("u", "a", 1, []byte("wa"))
	require.False(t, ok, "another tenant")

	c.Put("t", "b", 1, []byte("wb"), k)
	_, _ = c.Get("t", "a", 1, []byte("wa")) // a is the most recent
	c.Put("t", "c", 1, []byte("wc"), k)
	require.Equal(t, 2, c.Len(), "bounded")
	_, ok = c.Get("t", "b", 1, []byte("wb"))
	require.False(t, ok, "the least recently used went out")
	_, ok = c.Get("t", "a", 1, []byte("wa"))
	require.True(t, ok)
	v, w, got, ok := c.Latest("t", "a")
	require.True(t, ok)
	require.Equal(t, int64(1), v)
	require.Equal(t, []byte("wa"), w)
	require.Same(t, k, got)
	c.Evict("t", "a")
	_, _, _, ok = c.Latest("t", "a")
	require.False(t, ok)
	_, ok = c.Get("t", "a", 1, []byte("wa"))
	require.False(t, ok)
}

func TestUsesDevKeys(t *testing.T) {
	const hash = "b3RoZXItaGFzaC1rZXktb3RoZXItaGFzaC1rZXk="
	require.True(t, UsesDevKeys(DevKeys, hash))
	require.True(t, UsesDevKeys("prod:"+devKeyMaterial, hash), "the key, whatever its id")
	require.True(t, UsesDevKeys(otherKey, DevHashKey))
	require.False(t, UsesDevKeys(otherKey, hash))
	require.False(t, UsesDevKeys(otherKey+","+DevKeys, hash), "kept later in the ring while moving off it")
}

// The cipher keeps the KEKs it derived: a key wrapped with a kept KEK
// unwraps with a freshly derived one and the other way round, tenant by
// tenant, from several goroutines at once.
func TestKEKsKept(t *testing.T) {
	ctx := context.Background()
	warm, fresh := ring(t, DevKeys).Wrapper(), func() *RingWrapper { return ring(t, DevKeys).Wrapper() }
	var wg sync.WaitGroup
	for _, tenant := range []string{"t1", "t2", "t3", "t1", "t2", "t3"} {
		wg.Go(func() {
			for range 20 {
				dek, aad := NewDataKey(), DataKeyAAD("c-1", 1)
				_, wrapped, err := warm.Wrap(ctx, tenant, dek, aad)
				if !assert.NoError(t, err) {
					return
				}
				got, err := fresh().Unwrap(ctx, tenant, "dev", wrapped, aad)
				assert.NoError(t, err)
				assert.Equal(t, dek, got)
				_, err = warm.Unwrap(ctx, tenant+"x", "dev", wrapped, aad)
				assert.ErrorIs(t, err, ErrOpen, "another tenant's KEK, kept or not")
				_, rewrapped, err := fresh().Wrap(ctx, tenant, dek, aad)
				assert.NoError(t, err)
				got, err = warm.Unwrap(ctx, tenant, "dev", rewrapped, aad)
				assert.NoError(t, err)
				assert.Equal(t, dek, got)
			}
		})
	}
	wg.Wait()
}
