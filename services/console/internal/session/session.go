// Package session keeps a signed-in user's session in a cookie, encrypted
// and authenticated (AES-256 and HMAC-SHA256 with keys derived from
// SESSION_KEY), so that any console replica reads it and none stores it. The
// cookie is Secure, HttpOnly and SameSite=Lax, and lives no longer than the
// access token inside it.
package session

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
)

// Session is what the console knows of a signed-in user.
type Session struct {
	// Token is the user's access token, sent on every call to the services.
	Token string `json:"t"`
	// Name is the user's name from the ID token.
	Name string `json:"n,omitempty"`
	// Lang ("zh" or "en") and Zone (an IANA time zone) are how the user
	// reads the pages: from the ID token at sign-in, changed in settings.
	Lang string `json:"l,omitempty"`
	Zone string `json:"z,omitempty"`
	// CSRF is the session's anti-forgery token, which every form repeats.
	CSRF string `json:"c"`
	// Expires is when the access token expires; the session ends then.
	Expires time.Time `json:"e"`
}

// Store reads and writes sessions (and the short-lived sign-in state) as
// cookies.
type Store struct {
	codec  *securecookie.SecureCookie
	name   string
	signIn string
	secure bool
}

// NewStore derives the cookie keys from key (at least 32 bytes of secret).
// secure prefixes the cookies' names with __Host- (the page is served over
// HTTPS: the browser then keeps them to this host, Secure, path /); they
// are marked Secure either way (browsers accept Secure
// cookies from http://localhost).
func NewStore(key []byte, secure bool) (*Store, error) {
	if len(key) < 32 {
		return nil, errors.New("session: SESSION_KEY must hold at least 32 bytes")
	}
	hash, err := hkdf.Key(sha256.New, key, nil, "huifang-console session mac", 32)
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	block, err := hkdf.Key(sha256.New, key, nil, "huifang-console session aes", 32)
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	codec := securecookie.New(hash, block).SetSerializer(securecookie.JSONEncoder{}).MaxAge(0)
	codec.MaxLength(8192)
	name, signIn := "huifang_session", "huifang_signin"
	if secure {
		name, signIn = "__Host-"+name, "__Host-"+signIn
	}
	return &Store{codec: codec, name: name, signIn: signIn, secure: secure}, nil
}

// ErrNone is what Load returns when the request has no valid session.
var ErrNone = errors.New("session: not signed in")

// Load returns the request's session; ErrNone when there is none, it does
// not decode (another key, tampered) or it expired.
func (s *Store) Load(r *http.Request, now time.Time) (Session, error) {
	var sess Session
	if err := s.read(r, s.name, &sess); err != nil {
		return Session{}, ErrNone
	}
	if sess.Token == "" || !now.Before(sess.Expires) {
		return Session{}, ErrNone
	}
	return sess, nil
}

// Save writes sess as the response's session cookie.
func (s *Store) Save(w http.ResponseWriter, sess Session) error {
	if sess.CSRF == "" {
		tok, err := Random()
		if err != nil {
			return err
		}
		sess.CSRF = tok
	}
	return s.write(w, s.name, sess, sess.Expires)
}

// Clear removes the session cookie (sign-out).
func (s *Store) Clear(w http.ResponseWriter) { s.clear(w, s.name) }

// SignIn is the state of a sign-in between the redirect to the identity
// provider and the return: the PKCE verifier, the state and nonce, and
// where to go afterwards.
type SignIn struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"x"`
}

// signInTTL is how long a sign-in may take at the identity provider.
const signInTTL = 10 * time.Minute

// maxSignIns bounds the sign-ins a browser keeps under way: beyond it the
// older ones are forgotten (their cookies would swell every request).
const maxSignIns = 4

// SaveSignIn keeps in for the return from the identity provider, in a
// cookie of its own named after its state: sign-ins under way in two tabs
// (a session that expired in both) do not overwrite each other.
func (s *Store) SaveSignIn(w http.ResponseWriter, r *http.Request, in SignIn, now time.Time) error {
	name, ok := s.signInName(in.State)
	if !ok {
		return errors.New("session: a sign-in's state must be random URL-safe text")
	}
	var pending []string
	for _, c := range r.Cookies() {
		if strings.HasPrefix(c.Name, s.signIn+"_") {
			pending = append(pending, c.Name)
		}
	}
	if len(pending) >= maxSignIns {
		for _, p := range pending {
			s.clear(w, p)
		}
	}
	return s.write(w, name, in, now.Add(signInTTL))
}

// TakeSignIn returns the pending sign-in whose state the identity
// provider sent back, and forgets it; ErrNone when there is none (another
// browser's state, a forged one, or over ten minutes old).
func (s *Store) TakeSignIn(w http.ResponseWriter, r *http.Request, state string) (SignIn, error) {
	name, ok := s.signInName(state)
	if !ok {
		return SignIn{}, ErrNone
	}
	var in SignIn
	err := s.read(r, name, &in)
	if err != nil {
		return SignIn{}, ErrNone
	}
	s.clear(w, name)
	if in.State != state {
		return SignIn{}, ErrNone
	}
	return in, nil
}

// SignInUnderWay tells whether the request carries a sign-in of this
// browser (any state).
func (s *Store) SignInUnderWay(r *http.Request) bool {
	for _, c := range r.Cookies() {
		if strings.HasPrefix(c.Name, s.signIn+"_") {
			return true
		}
	}
	return false
}

// signInName is the cookie of the sign-in with state: the prefix and the
// state's first 16 characters, when the state is URL-safe text of at least
// that length (what Random makes).
func (s *Store) signInName(state string) (string, bool) {
	if len(state) < 16 {
		return "", false
	}
	for _, c := range state {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", false
		}
	}
	return s.signIn + "_" + state[:16], true
}

func (s *Store) read(r *http.Request, name string, dst any) error {
	c, err := r.Cookie(name)
	if err != nil {
		return err
	}
	return s.codec.Decode(name, c.Value, dst)
}

func (s *Store) write(w http.ResponseWriter, name string, v any, expires time.Time) error {
	enc, err := s.codec.Encode(name, v)
	if err != nil {
		return fmt.Errorf("session: encode: %w", err)
	}
	http.SetCookie(w, &http.Cookie{Name: name, Value: enc, Path: "/", Expires: expires,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	return nil
}

func (s *Store) clear(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// Random is 32 random bytes, URL-safe.
func Random() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("session: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
