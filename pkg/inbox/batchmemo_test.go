package inbox_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/inbox"
)

// The handlers of a batch see its messages (Batch) and share what Memo
// loaded: once per batch, again after a load that failed, and at every
// call for a message handled alone.
func TestBatchMemoLoadsOncePerBatch(t *testing.T) {
	b := setup(t)
	var loads int
	var seen []int
	c := b.batched(t, 10, func(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
		seen = append(seen, len(inbox.Batch(ctx)))
		v, err := inbox.Memo(ctx, "k", func() (string, error) {
			loads++
			if loads == 1 {
				return "", errors.New("not now")
			}
			return "loaded by " + string(msg.Data()), nil
		})
		if err != nil {
			return err
		}
		if len(inbox.Batch(ctx)) > 0 {
			require.Equal(t, "loaded by second", v, "the first load that worked is kept")
		}
		return recordTx(ctx, tx, msg)
	})
	for i, body := range []string{"first", "second", "third", "fourth"} {
		b.publish(t, fmt.Sprintf("e-%d", i), body)
	}
	c.ProcessBatch(b.ctx, fetch(t, b.durable(t, 0), 4))
	require.Equal(t, []int{4, 4, 4, 4}, seen[:4], "each handler of the batch sees its four messages")
	require.Equal(t, 3, loads, "a failed load, the one kept; then the first message alone loads again")
	require.Equal(t, []int{0}, seen[4:], "a message handled alone is in no batch")
	require.Equal(t, 4, b.count(t, `SELECT count(*) FROM tx_effects`), "the first message, failed in the batch, applies alone")
}
