package audit

import (
	"strings"
	"unicode/utf8"

	"github.com/huifang/huifang/pkg/invalid"
)

// PurposeRule is what a stated purpose or reason must be.
const PurposeRule = "must say why, in 3 to 200 characters: it is written to the audit log"

// CheckPurpose checks the purpose (or reason) a caller states for a reveal,
// an export or an erasure, which goes to the audit log: 3 to 200
// characters once trimmed. It names field in the InvalidArgument it returns.
func CheckPurpose(field, purpose string) error {
	if !ValidPurpose(purpose) {
		return invalid.New(field, PurposeRule)
	}
	return nil
}

// ValidPurpose says whether purpose keeps PurposeRule.
func ValidPurpose(purpose string) bool {
	n := utf8.RuneCountInString(strings.TrimSpace(purpose))
	return n >= 3 && n <= 200
}
