package grpcapi

import (
	"context"
	"strings"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"

	"github.com/huifang/huifang/pkg/page"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// ListAttempts lists the attempts of one task, oldest first, without notes.
func (s *Server) ListAttempts(ctx context.Context, req *dispatchv1.ListAttemptsRequest) (*dispatchv1.ListAttemptsResponse, error) {
	taskID := strings.TrimSpace(req.GetTaskId()) // not blank, page_size 0 to 500: dispatch.proto's rules
	size, err := page.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var after int
	if err := page.Cursor(req.GetPageToken(), &after); err != nil {
		return nil, err
	}
	t, list, err := s.App.ListAttempts(ctx, tenant.Or(req.GetTenantId()), taskID, after, size+1)
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &dispatchv1.ListAttemptsResponse{}
	list, resp.NextPageToken = page.Trim(list, size, func(last store.Attempt) any { return last.Number })
	for _, at := range list {
		resp.Attempts = append(resp.Attempts, attemptProto(t, at))
	}
	return resp, nil
}

// attemptProto is an attempt of t without its note.
func attemptProto(t task.Task, a store.Attempt) *dispatchv1.TaskAttempt {
	return &dispatchv1.TaskAttempt{TaskId: a.TaskID, VisitId: a.VisitID, Attempt: int32(a.Number), Disposition: a.Disposition,
		Channel: t.Channel, AgentId: a.AgentID, At: timestamp(a.At), NextAttemptAt: timestamp(a.NextAttemptAt)}
}
