package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/scheduler/internal/store"
)

// Unavailable tells the database being away (retry the work later) from the
// work's own failure (a statement refused, data that cannot be read).
func TestUnavailable(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("store: x: %w", &pgconn.PgError{Code: code}) }
	away := map[string]error{
		"context canceled":          fmt.Errorf("x: %w", context.Canceled),
		"context deadline":          context.DeadlineExceeded,
		"connection lost":           io.ErrUnexpectedEOF,
		"transaction closed":        pgx.ErrTxClosed,
		"connection exception 08":   pg("08006"),
		"admin shutdown 57P01":      pg("57P01"),
		"cannot connect now 57P03":  pg("57P03"),
		"statement timeout 57014":   pg("57014"),
		"serialization failure":     pg("40001"),
		"deadlock":                  pg("40P01"),
		"too many connections 53":   pg("53300"),
		"disk full 53100":           pg("53100"),
		"io error 58030":            pg("58030"),
		"lock timeout 55P03":        pg("55P03"),
		"internal error XX000":      pg("XX000"),
		"connect error (no server)": &pgconn.ConnectError{},
		"conn closed":               fmt.Errorf("x: %w", pgconn.ErrConnClosed),
		"network":                   &net.OpError{Op: "read", Err: syscall.ECONNRESET},
	}
	for name, err := range away {
		require.True(t, store.Unavailable(err), name)
	}
	own := map[string]error{
		"nil":                nil,
		"decode":             errors.New("the customer snapshot cannot be decoded"),
		"raise exception":    pg("P0001"),
		"not null violation": pg("23502"),
		"invalid text":       pg("22P02"),
		"undefined column":   pg("42703"),
		"damaged":            store.ErrDamaged,
		"not found":          store.ErrNotFound,
	}
	for name, err := range own {
		require.False(t, store.Unavailable(err), name)
	}
}
