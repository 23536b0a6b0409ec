// Package planner turns ServiceCompleted events into planned visits.
package planner

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/scheduler/internal/store"
)

// HandleServiceCompleted plans the visits of a ServiceCompleted event within
// the consumer's transaction.
func HandleServiceCompleted(ctx context.Context, tx pgx.Tx, msg jetstream.Msg) error {
	ev := &eventsv1.ServiceCompleted{}
	if err := proto.Unmarshal(msg.Data(), ev); err != nil {
		return invalid.New("payload", "must be a ServiceCompleted in protobuf: "+err.Error())
	}
	var l invalid.List
	if ev.GetServiceId() == "" {
		l.Add("service_id", "is required on ServiceCompleted from intake")
	}
	if ev.GetCompletedAt() == nil {
		l.Add("completed_at", "is required")
	}
	if ev.GetTenantId() == "" {
		l.Add("tenant_id", "is required on ServiceCompleted from intake")
	}
	if err := l.Err(); err != nil {
		return err
	}
	_, err := store.PlanService(ctx, tx, ev)
	return err
}
