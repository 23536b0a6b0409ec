package inbox_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

type preparedKey struct{}

// recordPrepared records each message with what Prepare gave its handler:
// the bodies of the messages it was given.
func recordPrepared(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
	seen, _ := ctx.Value(preparedKey{}).([]string)
	_, err := tx.Exec(ctx, `INSERT INTO tx_effects (body, tx) VALUES ($1, txid_current())`, string(msg.Data())+" saw "+strings.Join(seen, ","))
	return err
}

func prepareBodies(ctx context.Context, tx pgx.Tx, msgs []jetstream.Msg) (context.Context, error) {
	var bodies []string
	for _, m := range msgs {
		bodies = append(bodies, string(m.Data()))
	}
	return context.WithValue(ctx, preparedKey{}, bodies), nil
}

// Prepare is given a batch's claimed messages, once each, in order (not
// those handled before, nor a second copy), and the handlers run in the
// context it returns.
func TestBatchPrepareSeesTheClaimedMessages(t *testing.T) {
	b := setup(t)
	c := b.batched(t, 10, recordPrepared)
	c.Prepare = prepareBodies
	for i := range 4 {
		b.publish(t, fmt.Sprintf("e-%d", i), fmt.Sprintf("b%d", i))
	}
	msgs := fetch(t, b.durable(t, 0), 4)
	c.ProcessBatch(b.ctx, msgs[:1]) // alone: no Prepare
	c.ProcessBatch(b.ctx, append(msgs, msgs[2]))
	rows, err := b.pool.Query(b.ctx, `SELECT body FROM tx_effects ORDER BY body`)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"b0 saw ", "b1 saw b1,b2,b3", "b2 saw b1,b2,b3", "b3 saw b1,b2,b3"}, got)
}

// A batch whose Prepare fails writes nothing of it: its messages are
// handled one by one, without Prepare, each once.
func TestBatchPrepareFailingHandlesMessagesAlone(t *testing.T) {
	b := setup(t)
	c := b.batched(t, 10, recordPrepared)
	c.Prepare = func(context.Context, pgx.Tx, []jetstream.Msg) (context.Context, error) {
		return nil, errors.New("prepare failed")
	}
	for i := range 3 {
		b.publish(t, fmt.Sprintf("e-%d", i), fmt.Sprintf("b%d", i))
	}
	c.ProcessBatch(b.ctx, fetch(t, b.durable(t, 0), 3))
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM tx_effects WHERE body LIKE '% saw '`))
	require.Equal(t, 3, b.count(t, `SELECT count(DISTINCT tx) FROM tx_effects`), "one transaction each")
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM inbox`))
}
