package complaint

import (
	"strings"
	"unicode"
)

// Key normalizes a problem's description for matching the same problem
// raised again (seeds 000, 002: one problem raised with several departments
// or through several channels is recorded once). Full-width forms become
// their ASCII counterparts, letters are lower-cased, and everything that is
// not a letter or a digit (spaces, punctuation, symbols, in any script) is
// dropped. "Lift broken, nobody came!" and "lift broken nobody came" have
// the same key, as have "电梯坏了，没人修。" and "电梯坏了 没人修".
func Key(description string) string {
	var b strings.Builder
	for _, r := range description {
		if r >= 0xFF01 && r <= 0xFF5E { // full-width ASCII forms
			r -= 0xFEE0
		}
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}
