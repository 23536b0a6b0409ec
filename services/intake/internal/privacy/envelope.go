package privacy

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// Envelope encryption of the customer archive: every customer has a data
// key (DEK) of its own, a random AES-256 key that is stored only wrapped
// (encrypted) by its tenant's key-encryption key (KEK). Each field is sealed
// under the DEK with additional data naming the tenant, the customer, the
// field and the DEK's version, so a ciphertext copied into another row or
// field does not open. Destroying a customer's wrapped DEK makes its fields
// unreadable for good (crypto-shredding).

// DataKeySize is the size of a data key: AES-256.
const DataKeySize = 32

// ErrUnknownKey is returned by a KeyWrapper asked to unwrap with a key id it
// does not hold (a key retired from ENCRYPTION_KEYS too early).
var ErrUnknownKey = errors.New("privacy: unknown key id")

// ErrOpen is returned when a sealed value or wrapped key does not open: it
// was tampered with, or it belongs to another customer, field or key.
var ErrOpen = errors.New("privacy: does not open")

// KeyWrapper wraps and unwraps data keys with a tenant's key-encryption
// key. RingWrapper is the one built from ENCRYPTION_KEYS; a KMS adapter can
// implement it too (the tenant and aad become its encryption context).
type KeyWrapper interface {
	// CurrentKeyID is the id of the key new data keys are wrapped with.
	CurrentKeyID() string
	// HasKey tells whether keys wrapped under the id can be unwrapped.
	HasKey(keyID string) bool
	// Wrap encrypts dek under the tenant's current key, bound to aad; it
	// returns the key's id and the wrapped key.
	Wrap(ctx context.Context, tenant string, dek, aad []byte) (keyID string, wrapped []byte, err error)
	// Unwrap decrypts a key Wrap wrapped under keyID for the tenant with
	// the same aad; ErrUnknownKey when keyID is not held, ErrOpen when it
	// does not open.
	Unwrap(ctx context.Context, tenant, keyID string, wrapped, aad []byte) ([]byte, error)
}

// RingWrapper is the KeyWrapper of a key ring (ENCRYPTION_KEYS): each ring
// key gives every tenant a KEK of its own, derived with HKDF-SHA256 with the
// tenant in the info, so no two tenants share a KEK.
type RingWrapper struct{ c *Cipher }

// Wrapper is the ring's KeyWrapper.
func (c *Cipher) Wrapper() *RingWrapper { return &RingWrapper{c: c} }

// CurrentKeyID is the id of the ring's first key.
func (w *RingWrapper) CurrentKeyID() string { return w.c.current }

// HasKey tells whether the ring holds the key id.
func (w *RingWrapper) HasKey(keyID string) bool { return w.c.HasKey(keyID) }

// kek is the tenant's key-encryption key derived from the ring key keyID,
// derived once per cipher (the cipher keeps it: an import wraps a key per
// new customer, a resumed one unwraps one per customer).
func (w *RingWrapper) kek(tenant, keyID string) (cipher.AEAD, error) {
	secret, ok := w.c.raw[keyID]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, keyID)
	}
	name := keyID + "\x00" + tenant
	if aead, ok := w.c.keks.Load(name); ok {
		return aead.(cipher.AEAD), nil
	}
	key, err := hkdf.Key(sha256.New, secret, nil, "huifang intake kek v1\x00"+tenant, 32)
	if err != nil {
		return nil, fmt.Errorf("privacy: derive the key-encryption key: %w", err)
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	w.c.keks.Store(name, aead)
	return aead, nil
}

// Wrap wraps dek with the tenant's KEK from the current ring key.
func (w *RingWrapper) Wrap(_ context.Context, tenant string, dek, aad []byte) (string, []byte, error) {
	id := w.c.current
	aead, err := w.kek(tenant, id)
	if err != nil {
		return "", nil, err
	}
	return id, seal(aead, dek, wrapAAD(tenant, id, aad)), nil
}

// Unwrap opens a key wrapped with the tenant's KEK from the ring key keyID.
func (w *RingWrapper) Unwrap(_ context.Context, tenant, keyID string, wrapped, aad []byte) ([]byte, error) {
	aead, err := w.kek(tenant, keyID)
	if err != nil {
		return nil, err
	}
	dek, err := open(aead, wrapped, wrapAAD(tenant, keyID, aad))
	if err != nil {
		return nil, fmt.Errorf("privacy: unwrap with key %q: %w", keyID, err)
	}
	return dek, nil
}

func wrapAAD(tenant, keyID string, aad []byte) []byte {
	return frame("huifang.intake.dek.v1", tenant, keyID, string(aad))
}

// NewDataKey returns a fresh random data key.
func NewDataKey() []byte {
	k := make([]byte, DataKeySize)
	_, _ = rand.Read(k) // crypto/rand.Read never fails
	return k
}

// DataKeyAAD is what a customer's wrapped data key is bound to: the
// customer and the key's version (the wrapper adds the tenant).
func DataKeyAAD(customerID string, version int64) []byte {
	return frame("", customerID, strconv.FormatInt(version, 10))
}

// FieldAAD binds a sealed field to its tenant, customer, field name and the
// version of the data key it is sealed under.
func FieldAAD(tenant, customerID, field string, version int64) []byte {
	return frame("huifang.intake.field.v1", tenant, customerID, field, strconv.FormatInt(version, 10))
}

// frame is context followed by each part with its length first, so that no
// two lists of parts frame alike.
func frame(context string, parts ...string) []byte {
	n := len(context)
	for _, p := range parts {
		n += binary.MaxVarintLen64 + len(p)
	}
	b := append(make([]byte, 0, n), context...)
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

// DataKey seals and opens one customer's fields.
type DataKey struct{ aead cipher.AEAD }

// OpenDataKey makes a DataKey of a 32-byte key.
func OpenDataKey(key []byte) (*DataKey, error) {
	if len(key) != DataKeySize {
		return nil, fmt.Errorf("privacy: a data key has %d bytes, not %d", DataKeySize, len(key))
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return &DataKey{aead: aead}, nil
}

// Seal encrypts plain bound to aad (FieldAAD); empty stays empty (nil).
func (k *DataKey) Seal(plain string, aad []byte) []byte {
	if plain == "" {
		return nil
	}
	return seal(k.aead, []byte(plain), aad)
}

// Open decrypts what Seal sealed with the same aad; ErrOpen when it does
// not open (tampered, or another customer's or field's value).
func (k *DataKey) Open(data, aad []byte) (string, error) {
	if len(data) == 0 {
		return "", nil
	}
	plain, err := open(k.aead, data, aad)
	return string(plain), err
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("privacy: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("privacy: %w", err)
	}
	return aead, nil
}

// seal is nonce ‖ AES-GCM(plain, aad) with a random nonce.
func seal(aead cipher.AEAD, plain, aad []byte) []byte {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails
	return aead.Seal(nonce, nonce, plain, aad)
}

func open(aead cipher.AEAD, data, aad []byte) ([]byte, error) {
	if len(data) < aead.NonceSize() {
		return nil, fmt.Errorf("%w: too short", ErrOpen)
	}
	plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], aad)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOpen, err)
	}
	return plain, nil
}
