package outbox

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ReadBehind is readBehind for the tests, with floors that leave out no
// row: the sequence numbers it reads.
func (r *Relay) ReadBehind(ctx context.Context, conn *pgxpool.Conn, cursor int64, inFlight map[int64]struct{}) ([]int64, error) {
	rows, _, err := r.readBehind(ctx, conn, floors{xid: 0, seq: noSeqFloor}, cursor, inFlight)
	seqs := make([]int64, len(rows))
	for i, x := range rows {
		seqs[i] = x.seq
	}
	return seqs, err
}
