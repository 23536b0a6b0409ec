package app_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/services/intake/internal/app"
)

// A batch that decided to create a customer another writer created
// meanwhile (after the batch read the archive) fails with ErrConflict, to
// be handled again (the inbox then takes its events one by one), and
// writes nothing; the other writer's customer stands.
func TestIngestSetConflictsOnACustomerCreatedMeanwhile(t *testing.T) {
	b := setup(t)
	ev := event(t, repair)
	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(b.ctx) }()
	ctx, err := b.app.PrepareIngest(b.ctx, tx, []*eventsv1.ServiceCompleted{ev})
	require.NoError(t, err)

	other := event(t, repair)
	other.SourceSystem = "callcenter"
	out, err := b.app.IngestService(b.ctx, app.IngestService{Event: other})
	require.NoError(t, err)
	require.Nil(t, out.Invalid)

	// Outside a consumer's batch, what it gathers is written at once.
	_, err = b.app.IngestServiceTx(ctx, tx, app.IngestService{Event: ev})
	require.True(t, errors.Is(err, app.ErrConflict), "err: %v", err)
	require.NoError(t, tx.Rollback(b.ctx))
	require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM customers`))
	require.Equal(t, 1, count(t, b.pool, `SELECT count(*) FROM services WHERE source_system = 'callcenter'`))
	require.Zero(t, count(t, b.pool, `SELECT count(*) FROM services WHERE source_system = 'erp'`))
}

// Within a batch's state, a resend of an event the archive stored (through
// another way in) is a duplicate that changes nothing, and one event's
// change is seen by the next event of the batch about the same customer.
func TestIngestSetSeesStoredAndEarlierEvents(t *testing.T) {
	b := setup(t)
	first, err := b.app.IngestService(b.ctx, app.IngestService{Event: event(t, repair)})
	require.NoError(t, err)

	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(b.ctx) }()
	again, next := event(t, repair), event(t, repair)
	next.SourceEventId, next.Customer.Name = "e-2", "王芳"
	ctx, err := b.app.PrepareIngest(b.ctx, tx, []*eventsv1.ServiceCompleted{again, next})
	require.NoError(t, err)
	out, err := b.app.IngestServiceTx(ctx, tx, app.IngestService{Event: again})
	require.NoError(t, err)
	require.True(t, out.Duplicate)
	require.Equal(t, first.ServiceID, out.ServiceID)
	out, err = b.app.IngestServiceTx(ctx, tx, app.IngestService{Event: next})
	require.NoError(t, err)
	require.False(t, out.Duplicate)
	require.Equal(t, first.CustomerID, out.CustomerID)
	require.NoError(t, tx.Commit(b.ctx))
	require.Equal(t, 2, count(t, b.pool, `SELECT count(*) FROM services`))
	require.Equal(t, 2, count(t, b.pool, `SELECT version FROM customers`), "the second event's change is saved on the first's")
}
