package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Pipeline is a transaction that holds statements back and sends them with
// the next statement that needs an answer, in one round trip (a pgx batch:
// one network write, one Sync). A statement whose answer nobody reads (a
// savepoint, an advisory lock, an insert into the outbox) then costs
// Postgres its work but not a round trip of its own, which on a busy
// machine costs more than the work (the context switches on both sides of
// the socket).
//
// Statements are held by Hold and by Defer; every other method sends what
// is held first, so statements run in the order they were given. The error
// of a held statement comes back from the call that sent it.
type Pipeline struct {
	pgx.Tx
	held  []heldStatement
	sends int
}

type heldStatement struct {
	sql  string
	args []any
}

// NewPipeline wraps tx.
func NewPipeline(tx pgx.Tx) *Pipeline { return &Pipeline{Tx: tx} }

// Hold keeps sql back until the next round trip and returns its place
// among the statements held (see Held and Drop).
func (p *Pipeline) Hold(sql string, args ...any) int {
	p.held = append(p.held, heldStatement{sql: sql, args: args})
	return len(p.held) - 1
}

// Held is how many statements wait for the next round trip.
func (p *Pipeline) Held() int { return len(p.held) }

// HeldSQL is the statement held at place i.
func (p *Pipeline) HeldSQL(i int) string { return p.held[i].sql }

// Drop forgets the statements held from place i on: they are never sent.
func (p *Pipeline) Drop(i int) { p.held = p.held[:i] }

// Sends counts the round trips that carried held statements: when it has
// not moved since a statement was held, that statement was not sent.
func (p *Pipeline) Sends() int { return p.sends }

// Flush sends what is held, if anything.
func (p *Pipeline) Flush(ctx context.Context) error {
	if len(p.held) == 0 {
		return nil
	}
	b := p.batch()
	br := p.Tx.SendBatch(ctx, b)
	return p.closeHeld(br, len(b.QueuedQueries))
}

// batch queues what is held, and forgets it (it is sent now, whatever
// happens to it).
func (p *Pipeline) batch() *pgx.Batch {
	b := &pgx.Batch{}
	for _, h := range p.held {
		b.Queue(h.sql, h.args...)
	}
	p.held = p.held[:0]
	p.sends++
	return b
}

// readHeld reads the results of the first n statements of br.
func readHeld(br pgx.BatchResults, n int) error {
	for range n {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	return nil
}

// closeHeld reads the results of the n statements of br and closes it.
func (p *Pipeline) closeHeld(br pgx.BatchResults, n int) error {
	err := readHeld(br, n)
	return errors.Join(err, ignoreAfter(err, br.Close()))
}

// ignoreAfter drops the error of closing a batch when an earlier statement
// of it failed: Close reports that same failure again.
func ignoreAfter(first, closeErr error) error {
	if first != nil {
		return nil
	}
	return closeErr
}

// Exec sends what is held and sql in one round trip.
func (p *Pipeline) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if len(p.held) == 0 {
		return p.Tx.Exec(ctx, sql, args...)
	}
	br, err := p.sendWith(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return tag, err
}

// Query sends what is held and sql in one round trip. The rows must be
// closed (or read to the end) before the transaction is used again, as
// with any pgx query.
func (p *Pipeline) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if len(p.held) == 0 {
		return p.Tx.Query(ctx, sql, args...)
	}
	br, err := p.sendWith(ctx, sql, args)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// sendWith sends what is held and then sql in one batch and reads the
// results of the held statements: the batch's next result is sql's.
func (p *Pipeline) sendWith(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	b := p.batch()
	n := len(b.QueuedQueries)
	b.Queue(sql, args...)
	br := p.Tx.SendBatch(ctx, b)
	if err := readHeld(br, n); err != nil {
		_ = br.Close()
		return nil, err
	}
	return br, nil
}

// QueryRow sends what is held and sql in one round trip; the row is read
// on Scan, as with pgx.
func (p *Pipeline) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if len(p.held) == 0 {
		return p.Tx.QueryRow(ctx, sql, args...)
	}
	rows, err := p.Query(ctx, sql, args...)
	return &pipelineRow{rows: rows, err: err}
}

// SendBatch sends what is held first, then b.
func (p *Pipeline) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := p.Flush(ctx); err != nil {
		return failedBatch{err: err}
	}
	return p.Tx.SendBatch(ctx, b)
}

// CopyFrom sends what is held first, then the copy.
func (p *Pipeline) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if err := p.Flush(ctx); err != nil {
		return 0, err
	}
	return p.Tx.CopyFrom(ctx, table, columns, src)
}

// Prepare sends what is held first, then prepares sql.
func (p *Pipeline) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	if err := p.Flush(ctx); err != nil {
		return nil, err
	}
	return p.Tx.Prepare(ctx, name, sql)
}

// Begin sends what is held first, then starts a savepoint, itself a
// Pipeline; the outer one must not be used until it ends.
func (p *Pipeline) Begin(ctx context.Context) (pgx.Tx, error) {
	if err := p.Flush(ctx); err != nil {
		return nil, err
	}
	tx, err := p.Tx.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return NewPipeline(tx), nil
}

// Commit sends what is held, then commits (or releases the savepoint).
func (p *Pipeline) Commit(ctx context.Context) error {
	if err := p.Flush(ctx); err != nil {
		_ = p.Tx.Rollback(ctx)
		return err
	}
	return p.Tx.Commit(ctx)
}

// Rollback forgets what is held and rolls back.
func (p *Pipeline) Rollback(ctx context.Context) error {
	p.held = p.held[:0]
	return p.Tx.Rollback(ctx)
}

// Defer runs sql within tx, whose result nobody reads: held until the next
// round trip when tx is a Pipeline, at once otherwise. Its error comes back
// from the call that sends it.
func Defer(ctx context.Context, tx Querier, sql string, args ...any) error {
	if p, ok := tx.(*Pipeline); ok {
		p.Hold(sql, args...)
		return nil
	}
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		return err
	}
	return nil
}

// batchRows closes the batch its rows came from when they are closed or read to the end.
type batchRows struct {
	pgx.Rows
	br     pgx.BatchResults
	closed bool
	err    error
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *batchRows) Close() {
	r.Rows.Close()
	if !r.closed {
		r.closed = true
		if err := r.br.Close(); err != nil && r.Rows.Err() == nil {
			r.err = err
		}
	}
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// pipelineRow is the row of a pipelined QueryRow.
type pipelineRow struct {
	rows pgx.Rows
	err  error
}

func (r *pipelineRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

// failedBatch is the results of a batch that was never sent.
type failedBatch struct{ err error }

func (f failedBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, f.err }
func (f failedBatch) Query() (pgx.Rows, error)         { return nil, f.err }
func (f failedBatch) QueryRow() pgx.Row                { return errRow{f.err} }
func (f failedBatch) Close() error                     { return f.err }
func (f failedBatch) Tx() pgx.Tx                       { return nil }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

var _ pgx.Tx = (*Pipeline)(nil)
