// Package grpcapi serves huifang.dispatch.v1.DispatchService.
package grpcapi

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/outbox"
	"github.com/huifang/huifang/pkg/page"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// Server implements DispatchService.
type Server struct {
	dispatchv1.UnimplementedDispatchServiceServer
	Store *store.Store
	Relay *outbox.Relay
	Now   func() time.Time
	// Lease is how long a claimed task stays with its agent.
	Lease time.Duration
}

// UpsertAgent registers an agent or updates one.
func (s *Server) UpsertAgent(ctx context.Context, req *dispatchv1.UpsertAgentRequest) (*dispatchv1.UpsertAgentResponse, error) {
	if req.GetAgent() == nil {
		return nil, invalid.New("agent", "is required")
	}
	a := task.Agent{
		Tenant:  req.GetAgent().GetTenantId(),
		ID:      req.GetAgent().GetId(),
		Name:    req.GetAgent().GetName(),
		Groups:  req.GetAgent().GetGroups(),
		OrgUnit: req.GetAgent().GetOrgUnit(),
	}
	if err := task.NormalizeAgent(&a); err != nil {
		return nil, err
	}
	stored, err := s.Store.UpsertAgent(ctx, a, s.Now())
	if err != nil {
		return nil, err
	}
	return &dispatchv1.UpsertAgentResponse{Agent: agentProto(stored)}, nil
}

// ListAgents lists the tenant's agents by id.
func (s *Server) ListAgents(ctx context.Context, req *dispatchv1.ListAgentsRequest) (*dispatchv1.ListAgentsResponse, error) {
	size, err := page.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var after string
	if err := page.Cursor(req.GetPageToken(), &after); err != nil {
		return nil, err
	}
	agents, err := s.Store.ListAgents(ctx, task.Tenant(req.GetTenantId()), size+1, after)
	if err != nil {
		return nil, err
	}
	resp := &dispatchv1.ListAgentsResponse{}
	if len(agents) > size {
		agents = agents[:size]
		resp.NextPageToken = page.Token(agents[size-1].ID)
	}
	for _, a := range agents {
		resp.Agents = append(resp.Agents, agentProto(a))
	}
	return resp, nil
}

// ClaimNextTask leases the most urgent task the agent may take. The
// response has no task when none is open.
func (s *Server) ClaimNextTask(ctx context.Context, req *dispatchv1.ClaimNextTaskRequest) (*dispatchv1.ClaimNextTaskResponse, error) {
	agentID := strings.TrimSpace(req.GetAgentId())
	if agentID == "" {
		return nil, invalid.New("agent_id", "is required")
	}
	t, found, err := s.Store.Claim(ctx, task.Tenant(req.GetTenantId()), agentID, s.Now(), s.Lease)
	if errors.Is(err, store.ErrAgentNotFound) {
		return nil, status.Errorf(codes.NotFound, "no agent %q in the tenant; register it with UpsertAgent", agentID)
	}
	if err != nil {
		return nil, err
	}
	if !found {
		return &dispatchv1.ClaimNextTaskResponse{}, nil
	}
	s.Relay.Notify()
	return &dispatchv1.ClaimNextTaskResponse{Task: taskProto(t)}, nil
}

// ListTasks lists tasks, most urgent first.
func (s *Server) ListTasks(ctx context.Context, req *dispatchv1.ListTasksRequest) (*dispatchv1.ListTasksResponse, error) {
	size, err := page.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	if err := task.CheckStatus(req.GetStatus()); err != nil {
		return nil, err
	}
	var cur store.TaskCursor
	if err := page.Cursor(req.GetPageToken(), &cur); err != nil {
		return nil, err
	}
	f := store.TaskFilter{Tenant: task.Tenant(req.GetTenantId()), AgentID: strings.TrimSpace(req.GetAgentId()), Status: req.GetStatus()}
	tasks, err := s.Store.ListTasks(ctx, f, cur, size+1)
	if err != nil {
		return nil, err
	}
	resp := &dispatchv1.ListTasksResponse{}
	if len(tasks) > size {
		tasks = tasks[:size]
		resp.NextPageToken = page.Token(store.CursorOf(tasks[size-1]))
	}
	for _, t := range tasks {
		resp.Tasks = append(resp.Tasks, taskProto(t))
	}
	return resp, nil
}

func agentProto(a task.Agent) *dispatchv1.Agent {
	return &dispatchv1.Agent{Id: a.ID, TenantId: a.Tenant, Name: a.Name, Groups: a.Groups, OrgUnit: a.OrgUnit}
}

func taskProto(t task.Task) *dispatchv1.Task {
	return &dispatchv1.Task{
		Id:             t.ID,
		TenantId:       t.Tenant,
		VisitId:        t.VisitID,
		Customer:       t.Customer,
		Channel:        t.Channel,
		Group:          t.Group,
		DueAt:          timestamp(t.DueAt),
		Deadline:       timestamp(t.Deadline),
		Status:         t.Status,
		AgentId:        t.AgentID,
		LeaseExpiresAt: timestamp(t.LeaseExpiresAt),
		ServiceType:    t.ServiceType,
		OrgUnit:        t.OrgUnit,
	}
}

// timestamp converts a time, leaving the zero time absent.
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
