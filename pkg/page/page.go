// Package page turns list requests' page_size and page_token into limits and
// cursors, with the same defaults and errors in every API.
package page

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/huifang/huifang/pkg/invalid"
)

// Default and Max bound page_size.
const (
	Default = 50
	Max     = 500
)

// Size returns the page size to use for a requested one (0 means Default).
func Size(requested int32) (int, error) {
	switch {
	case requested < 0:
		return 0, invalid.New("page_size", "must not be negative")
	case requested == 0:
		return Default, nil
	case requested > Max:
		return 0, invalid.New("page_size", fmt.Sprintf("must be at most %d", Max))
	}
	return int(requested), nil
}

// Token encodes a cursor as an opaque page token.
func Token(cursor any) string {
	b, err := json.Marshal(cursor)
	if err != nil {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Cursor decodes a page token into cursor; an empty token leaves it unchanged.
func Cursor(token string, cursor any) error {
	if token == "" {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err == nil {
		err = json.Unmarshal(b, cursor)
	}
	if err != nil {
		return invalid.New("page_token", "is not a token this API returned")
	}
	return nil
}

// Trim takes the rows of a page read with one row more than size (the extra
// row tells that a next page exists), cuts them to size, and returns the token
// of the next page, made from the cursor of the last row kept; the token is
// empty on the last page.
func Trim[T any](rows []T, size int, cursor func(last T) any) ([]T, string) {
	if len(rows) <= size {
		return rows, ""
	}
	rows = rows[:size]
	return rows, Token(cursor(rows[size-1]))
}
