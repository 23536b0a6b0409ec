// Package migrations holds dispatch's schema, applied at start.
package migrations

import "embed"

// FS holds the numbered SQL files.
//
//go:embed *.sql
var FS embed.FS
