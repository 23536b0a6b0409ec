// Package privacy keeps customers' data confidential: envelope encryption at
// rest (a data key per customer sealing its fields, wrapped by a per-tenant
// key-encryption key derived from the key ring; envelope.go), the key ring
// itself (ENCRYPTION_KEYS, with key ids for rotation) sealing refused
// payloads, keyed hashes (HMAC-SHA256) for search, and the masks API
// responses show (seed 000: information is confidential; seed 001: employees
// must not leak customer data).
package privacy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode"
)

// DevKeys is the key ring used when none is configured: for development and
// tests only; the service warns when it runs with it.
const DevKeys = "dev:ZGV2LWtleS1kby1ub3QtdXNlLWluLXByb2R1Y3Rpb24=" // "dev-key-do-not-use-in-production" (32 bytes)

// DevHashKey is the search-hash key used when none is configured.
const DevHashKey = "ZGV2LWhhc2gta2V5LWRvLW5vdC11c2UtaW4tcHJvZHVjdGlvbg=="

// Cipher encrypts with the current key and decrypts with any key of the ring.
// Customers' fields are sealed under per-customer data keys (see DataKey);
// the ring itself seals refused payloads, opens the contacts sealed before
// data keys, and is what RingWrapper derives the tenants' key-encryption
// keys from.
type Cipher struct {
	current string
	ids     []string
	raw     map[string][]byte
	aeads   map[string]cipher.AEAD
	hashKey []byte
	// macs holds HMACs keyed with hashKey for hash to reuse (*mac): keying
	// one (hmac.New) costs more than the hash itself, and an import (or an
	// ingested event) hashes some fifteen values per customer.
	macs sync.Pool
	// keks holds the tenants' key-encryption keys (RingWrapper.kek) by
	// ring key id and tenant: cipher.AEAD.
	keks sync.Map
}

// New builds a cipher from a key ring "id:base64key,id2:base64key" (each key
// 16, 24 or 32 bytes; the first is current: new data is sealed with it) and
// a base64 hash key (at least 16 bytes).
func New(ring, hashKey string) (*Cipher, error) {
	c := &Cipher{aeads: map[string]cipher.AEAD{}, raw: map[string][]byte{}}
	for i, part := range strings.Split(ring, ",") {
		id, b64, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok || id == "" {
			return nil, fmt.Errorf("privacy: key %d: want id:base64key", i+1)
		}
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("privacy: key %q: %w", id, err)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("privacy: key %q: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("privacy: key %q: %w", id, err)
		}
		if _, dup := c.aeads[id]; dup {
			return nil, fmt.Errorf("privacy: key id %q appears twice", id)
		}
		c.aeads[id] = aead
		c.raw[id] = key
		c.ids = append(c.ids, id)
		if i == 0 {
			c.current = id
		}
	}
	hk, err := base64.StdEncoding.DecodeString(hashKey)
	if err != nil {
		return nil, fmt.Errorf("privacy: hash key: %w", err)
	}
	if len(hk) < 16 {
		return nil, errors.New("privacy: hash key: want at least 16 bytes")
	}
	c.hashKey = hk
	c.macs.New = func() any { return &mac{h: hmac.New(sha256.New, hk)} }
	return c, nil
}

// KeyID is the id of the key new data is sealed with.
func (c *Cipher) KeyID() string { return c.current }

// KeyIDs are the ids of the ring's keys, the current one first.
func (c *Cipher) KeyIDs() []string { return slices.Clone(c.ids) }

// HasKey tells whether the ring holds the key id.
func (c *Cipher) HasKey(id string) bool {
	_, ok := c.aeads[id]
	return ok
}

// Seal encrypts plain with the current key; empty stays empty (nil).
// The nonce is prepended to the ciphertext.
func (c *Cipher) Seal(plain string) []byte {
	if plain == "" {
		return nil
	}
	aead := c.aeads[c.current]
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails
	return aead.Seal(nonce, nonce, []byte(plain), nil)
}

// Open decrypts data sealed with the key keyID.
func (c *Cipher) Open(keyID string, data []byte) (string, error) {
	if len(data) == 0 {
		return "", nil
	}
	aead, ok := c.aeads[keyID]
	if !ok {
		return "", fmt.Errorf("privacy: unknown key id %q", keyID)
	}
	if len(data) < aead.NonceSize() {
		return "", errors.New("privacy: ciphertext too short")
	}
	plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], nil)
	if err != nil {
		return "", fmt.Errorf("privacy: open with key %q: %w", keyID, err)
	}
	return string(plain), nil
}

// HashPhone is the keyed search hash of a phone number (digits only, a
// leading + kept); "" for an empty phone.
func (c *Cipher) HashPhone(phone string) string { return c.hash("phone", NormalizePhone(phone)) }

// HashEmail is the keyed search hash of an email (lower-cased).
func (c *Cipher) HashEmail(email string) string {
	return c.hash("email", strings.ToLower(strings.TrimSpace(email)))
}

// hashBytes is how much of an HMAC-SHA256 a search hash keeps: 64 bits,
// 16 hex digits. Search hashes are compared only for equality, so a chance
// match of one query hash with one of, say, 10⁹ stored hashes has a
// probability of about 10⁹/2⁶⁴ = 5·10⁻¹¹; the whole 256 bits would make every
// key of customers.search_hashes' GIN index and of the phone and email
// indexes four times as long, which a bulk import pays for in CPU and WAL
// (docs/benchmarks.md, "intake: importing a customer archive").
const hashBytes = 8

// hashFormat names the format of the search hashes in HashKeyID, so that
// hashes of an earlier format (the whole HMAC) count as stale and are
// recomputed like those of another HASH_KEY.
const hashFormat = "huifang/hmac-sha256-64"

// hash is the keyed hash of v in the domain kind: HMAC-SHA256 under
// HASH_KEY, its first hashBytes in hex; "" for an empty v.
func (c *Cipher) hash(kind, v string) string {
	if v == "" {
		return ""
	}
	m := c.macs.Get().(*mac)
	defer c.macs.Put(m)
	m.buf = append(append(append(m.buf[:0], kind...), 0), v...)
	m.h.Reset()
	m.h.Write(m.buf)
	m.buf = m.h.Sum(m.buf[:0])
	var out [2 * hashBytes]byte
	hex.Encode(out[:], m.buf[:hashBytes])
	return string(out[:])
}

// mac is a keyed HMAC with the buffer hash writes its input and sum in, so
// that a hash allocates only its result.
type mac struct {
	h   hash.Hash
	buf []byte
}

// NormalizePhone keeps the digits and a leading '+'.
func NormalizePhone(phone string) string {
	var b strings.Builder
	for i, r := range strings.TrimSpace(phone) {
		switch {
		case r == '+' && i == 0:
			b.WriteRune(r)
		case unicode.IsDigit(r) && r < 128:
			b.WriteRune(r)
		}
	}
	if b.String() == "+" {
		return ""
	}
	return b.String()
}

// sealedMagic starts a sealed payload. No JSON document and no protobuf
// message starts with a zero byte (field number 0 is invalid), so payloads
// stored before sealing are told apart and still read.
const sealedMagic = "\x00hfseal1\x00"

// SealPayload encrypts a whole payload (a refused input) with the current key
// into a self-describing envelope: the magic, the key id, a zero byte, then
// nonce and ciphertext. An empty payload stays empty.
func (c *Cipher) SealPayload(plain []byte) []byte {
	if len(plain) == 0 {
		return []byte{}
	}
	aead := c.aeads[c.current]
	out := make([]byte, 0, len(sealedMagic)+len(c.current)+1+aead.NonceSize()+len(plain)+aead.Overhead())
	out = append(out, sealedMagic...)
	out = append(out, c.current...)
	out = append(out, 0)
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plain, []byte(sealedMagic+c.current))
}

// SealedPrefix is how every sealed payload starts.
func SealedPrefix() []byte { return []byte(sealedMagic) }

// IsSealed tells whether data is a payload sealed by SealPayload.
func IsSealed(data []byte) bool { return strings.HasPrefix(string(data), sealedMagic) }

// SealedKeyID is the id of the key a sealed payload was sealed with; "" for
// a payload that is not sealed.
func SealedKeyID(data []byte) string {
	if !IsSealed(data) {
		return ""
	}
	id, _, _ := strings.Cut(string(data[len(sealedMagic):]), "\x00")
	return id
}

// OpenPayload decrypts a payload sealed by SealPayload with the key named in
// it; a payload that is not sealed (stored before sealing) comes back as it is.
func (c *Cipher) OpenPayload(data []byte) ([]byte, error) {
	if !IsSealed(data) {
		return data, nil
	}
	rest := data[len(sealedMagic):]
	i := strings.IndexByte(string(rest), 0)
	if i < 0 {
		return nil, errors.New("privacy: sealed payload without key id")
	}
	keyID := string(rest[:i])
	aead, ok := c.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("privacy: sealed payload: unknown key id %q", keyID)
	}
	box := rest[i+1:]
	if len(box) < aead.NonceSize() {
		return nil, errors.New("privacy: sealed payload too short")
	}
	plain, err := aead.Open(nil, box[:aead.NonceSize()], box[aead.NonceSize():], []byte(sealedMagic+keyID))
	if err != nil {
		return nil, fmt.Errorf("privacy: open payload with key %q: %w", keyID, err)
	}
	return plain, nil
}

// HashKeyID names the hash key and the hashes' format without revealing
// the key: rows record the id their search hashes were made with, so that
// after HASH_KEY (or the format) changes the stale ones can be found and
// recomputed.
func (c *Cipher) HashKeyID() string { return c.hash("key-id", hashFormat) }

var (
	phoneLike = regexp.MustCompile(`\+?[0-9][0-9 ]{5,22}[0-9]|[0-9]{3,4}-[0-9]{3,4}-[0-9]{4}`)
	emailLike = regexp.MustCompile(`[^\s"'<>,;:@\\]+@[A-Za-z0-9.\-]+`)
)

// MaskText masks what looks like a phone number (7 digits or more, in one
// run, spaced, or as 138-0013-8000) or an email in free text, such as a
// payload that does not decode. It errs on the side of masking: a long
// number that is no phone is masked too.
func MaskText(s string) string {
	s = emailLike.ReplaceAllStringFunc(s, MaskEmail)
	return phoneLike.ReplaceAllStringFunc(s, func(m string) string {
		if len(strings.TrimPrefix(NormalizePhone(m), "+")) < 7 {
			return m
		}
		return MaskPhone(m)
	})
}

// devKeyMaterial is the key of DevKeys.
const devKeyMaterial = "ZGV2LWtleS1kby1ub3QtdXNlLWluLXByb2R1Y3Rpb24="

// UsesDevKeys tells whether a configuration seals with the committed
// development keys: its current (first) key is DevKeys' key, whatever its
// id, or the hash key is DevHashKey. The development key may stay later in
// the ring, to open what it sealed while moving off it.
func UsesDevKeys(ring, hashKey string) bool {
	first, _, _ := strings.Cut(ring, ",")
	_, b64, _ := strings.Cut(strings.TrimSpace(first), ":")
	return b64 == devKeyMaterial || strings.TrimSpace(hashKey) == DevHashKey
}
