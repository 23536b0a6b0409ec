package outbox

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ReadBehind is readBehind for the tests: the sequence numbers it reads.
func (r *Relay) ReadBehind(ctx context.Context, conn *pgxpool.Conn, cursor int64, inFlight map[int64]struct{}) ([]int64, error) {
	rows, err := r.readBehind(ctx, conn, cursor, inFlight)
	seqs := make([]int64, len(rows))
	for i, x := range rows {
		seqs[i] = x.seq
	}
	return seqs, err
}
