package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/huifang/huifang/pkg/postgres"
)

// ClaimRequest records that the request requestID of tenant makes the
// complaint complaintID, unless the request was made before: then it
// returns the complaint that request made and whether it was attached to
// an open one, with done. A request made at the same time by another
// transaction is waited for (the primary key's lock), so a double click
// answers one complaint.
func ClaimRequest(ctx context.Context, q postgres.Querier, tenant, requestID, complaintID string, at time.Time) (prior string, attached, done bool, err error) {
	tag, err := q.Exec(ctx, `INSERT INTO complaint_requests (tenant_id, request_id, complaint_id, created_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant_id, request_id) DO NOTHING`, tenant, requestID, complaintID, at)
	if err != nil {
		return "", false, false, fmt.Errorf("store: claim request %s: %w", requestID, translate(err))
	}
	if tag.RowsAffected() == 1 {
		return "", false, false, nil
	}
	err = q.QueryRow(ctx, `SELECT complaint_id, attached FROM complaint_requests WHERE tenant_id = $1 AND request_id = $2`,
		tenant, requestID).Scan(&prior, &attached)
	if err = translate(err); err != nil && !errors.Is(err, ErrNotFound) {
		return "", false, false, fmt.Errorf("store: request %s: %w", requestID, err)
	}
	return prior, attached, err == nil, nil
}

// AttachRequest points the request requestID, claimed by ClaimRequest, at
// the open complaint complaintID it was attached to.
func AttachRequest(ctx context.Context, q postgres.Querier, tenant, requestID, complaintID string) error {
	if _, err := q.Exec(ctx, `UPDATE complaint_requests SET complaint_id = $3, attached = true WHERE tenant_id = $1 AND request_id = $2`,
		tenant, requestID, complaintID); err != nil {
		return fmt.Errorf("store: attach request %s: %w", requestID, translate(err))
	}
	return nil
}
