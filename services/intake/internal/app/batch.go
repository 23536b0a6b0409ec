package app

import (
	"context"
	"errors"
	"fmt"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/invalid"
)

// MaxIngestBatch bounds the events of one IngestBatch.
const MaxIngestBatch = 500

// IngestBatch is several completed services sent at once.
type IngestBatch struct {
	Events []*eventsv1.ServiceCompleted
	// Source names the way they came ("grpc", "http").
	Source string
	// Unknown, when set, holds per event the JSON keys the decoder
	// dropped (IngestService.Unknown).
	Unknown [][]string
}

// Batch is what a batch did: one result per event, in order, and the counts.
type Batch struct {
	Results                        []Ingested
	Accepted, Rejected, Duplicates int
}

// IngestBatch ingests the events one by one, each in a transaction of its
// own, as IngestService does: a refused event refuses only itself. An event
// that met a concurrent writer of the same event is tried once more (the
// other writer has committed by then).
func (a *App) IngestBatch(ctx context.Context, in IngestBatch) (Batch, error) {
	switch {
	case len(in.Events) == 0:
		return Batch{}, invalid.New("events", "at least one event is required")
	case len(in.Events) > MaxIngestBatch:
		return Batch{}, invalid.New("events", fmt.Sprintf("at most %d events per batch", MaxIngestBatch))
	}
	var b Batch
	for i, ev := range in.Events {
		if ev == nil {
			ev = &eventsv1.ServiceCompleted{}
		}
		one := IngestService{Event: ev, Source: in.Source}
		if i < len(in.Unknown) {
			one.Unknown = in.Unknown[i]
		}
		out, err := a.IngestService(ctx, one)
		if errors.Is(err, ErrConflict) {
			out, err = a.IngestService(ctx, one)
		}
		if err != nil {
			return Batch{}, fmt.Errorf("event %d: %w", i, err)
		}
		switch {
		case out.Invalid != nil:
			b.Rejected++
		case out.Duplicate:
			b.Duplicates++
		default:
			b.Accepted++
		}
		b.Results = append(b.Results, out)
	}
	return b, nil
}
