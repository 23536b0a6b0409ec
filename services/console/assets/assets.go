// Package assets holds the console's templates, message catalogs
// (i18n/zh.json, i18n/en.json: every key in both) and static files,
// embedded in the binary: the console needs no JavaScript toolchain to
// build or run.
package assets

import "embed"

// FS is the embedded files.
//
//go:embed templates i18n static
var FS embed.FS
