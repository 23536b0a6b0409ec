package privacy

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The search hashes of a customer (SearchCustomers): keyed hashes (HMAC-SHA256
// under HASH_KEY, each kind in its own domain) of
//
//   - the last n digits of its phone, for every n from MinPhoneDigits to all
//     of them (a leading '+' dropped): a fragment of 4 digits is the part of
//     the number the mask shows anyway (*******8000), a longer one or the
//     whole number finds the same customer;
//   - its normalized full name (lower case, every space removed: "Wang Fang",
//     "wang  fang" and "WangFang" are one name);
//   - the parts of its name: each word of a name written with spaces, and of
//     a name written without spaces in Han characters its first one and, for
//     three characters or more, first two characters (the surname, compound
//     surnames such as 欧阳 included).
//
// Nothing else matches: no substring, no given name alone of a Han name, no
// other spelling or transliteration. The hashes are one-way without
// HASH_KEY, and a 4-digit fragment is one of only 10⁴ values, so HASH_KEY
// must stay as secret as ENCRYPTION_KEYS (docs/privacy.md).

// MinPhoneDigits is the fewest digits of a phone a search takes.
const MinPhoneDigits = 4

// maxPhoneDigits bounds the hashes of one number (E.164 has at most 15 digits).
const maxPhoneDigits = 15

// The hash domains of the search hashes.
const (
	kindPhoneTail = "phone_tail"
	kindName      = "name"
	kindNamePart  = "name_part"
)

// SearchHashes returns the search hashes of a customer's name and phone
// (none for an empty one), in a stable order without duplicates.
func (c *Cipher) SearchHashes(name, phone string) []string {
	digits := PhoneDigits(phone)
	if len(digits) > maxPhoneDigits {
		digits = digits[len(digits)-maxPhoneDigits:]
	}
	// A tail per digit past the first MinPhoneDigits, the name's and a few
	// of its parts'.
	out := make([]string, 0, max(len(digits)-MinPhoneDigits+1, 0)+4)
	add := func(h string) {
		if h != "" && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	for n := MinPhoneDigits; n <= len(digits); n++ {
		add(c.hash(kindPhoneTail, digits[len(digits)-n:]))
	}
	words := NameWords(name)
	if len(words) == 0 {
		return out
	}
	add(c.hash(kindName, strings.Join(words, "")))
	for _, part := range nameParts(words) {
		add(c.hash(kindNamePart, part))
	}
	return out
}

// PhoneTailHash is the search hash of the last digits of a phone: digits
// as PhoneDigits returns them, at least MinPhoneDigits.
func (c *Cipher) PhoneTailHash(digits string) string {
	if len(digits) > maxPhoneDigits {
		digits = digits[len(digits)-maxPhoneDigits:]
	}
	return c.hash(kindPhoneTail, digits)
}

// NameQueryHashes are the hashes a name searched for matches: the full
// name's and, for one word, the name part's (a surname, a word of a name).
func (c *Cipher) NameQueryHashes(name string) []string {
	words := NameWords(name)
	if len(words) == 0 {
		return nil
	}
	out := []string{c.hash(kindName, strings.Join(words, ""))}
	if len(words) == 1 {
		out = append(out, c.hash(kindNamePart, words[0]))
	}
	return out
}

// PhoneDigits returns the ASCII digits of a phone, in order.
func PhoneDigits(phone string) string {
	var b strings.Builder
	for _, r := range phone {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// NameWords returns the words of a name, lower-cased (Unicode simple
// folding of letters), split at white space and at the middle dot of
// transliterated names (·).
func NameWords(name string) []string {
	return strings.FieldsFunc(strings.ToLower(strings.TrimSpace(name)), func(r rune) bool {
		return unicode.IsSpace(r) || r == '·' || r == '・'
	})
}

// nameParts are the parts of a name's words a surname search matches.
func nameParts(words []string) []string {
	if len(words) > 1 {
		return words
	}
	w := words[0]
	first, size := utf8.DecodeRuneInString(w)
	if !unicode.Is(unicode.Han, first) {
		return words
	}
	parts := []string{w[:size]}
	if utf8.RuneCountInString(w) >= 3 {
		_, size2 := utf8.DecodeRuneInString(w[size:])
		parts = append(parts, w[:size+size2])
	}
	return parts
}
