// Package grpcapi serves huifang.dispatch.v1.DispatchService: it checks
// the shape of each request, calls one app command or query, and encodes
// the answer; statusOf turns errors into gRPC statuses.
package grpcapi

import (
	"context"
	"fmt"
	"strings"
	"time"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"google.golang.org/protobuf/types/known/timestamppb"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/enum"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/page"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/pkg/watch"
	"github.com/huifang/huifang/services/dispatch/internal/app"
	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/sender"
	"github.com/huifang/huifang/services/dispatch/internal/task"
	"github.com/huifang/huifang/services/dispatch/internal/wire"
)

// Server implements DispatchService.
type Server struct {
	dispatchv1.UnimplementedDispatchServiceServer
	App *app.App
	// Watches runs WatchQueue and WatchWallboard (the runtime's hub).
	Watches *watch.Hub
	// How the watches pace themselves; the Default… constants when zero.
	QueueRefresh, QueueCoalesce, WallboardRefresh, WallboardCoalesce time.Duration
}

// taskAndAgent trims the ids of a call on a task by its agent and notes a
// missing agent in bad (task_id is required by dispatch.proto's rules).
func taskAndAgent(bad *invalid.List, taskID, agentID string) (string, string) {
	taskID, agentID = strings.TrimSpace(taskID), strings.TrimSpace(agentID)
	if agentID == "" {
		bad.Add("agent_id", "is required")
	}
	return taskID, agentID
}

// UpsertOrgUnit creates or updates an org unit.
func (s *Server) UpsertOrgUnit(ctx context.Context, req *dispatchv1.UpsertOrgUnitRequest) (*dispatchv1.UpsertOrgUnitResponse, error) {
	p := req.GetUnit()
	stored, err := s.App.UpsertOrgUnit(ctx, task.OrgUnit{Tenant: p.GetTenantId(), ID: p.GetId(), Name: p.GetName(), ParentID: p.GetParentId(),
		Kind: p.GetKind(), LeaderID: p.GetLeaderId()})
	if err != nil {
		return nil, statusOf(err)
	}
	return &dispatchv1.UpsertOrgUnitResponse{Unit: unitProto(stored)}, nil
}

// ListOrgUnits lists the tenant's org units, parents first.
func (s *Server) ListOrgUnits(ctx context.Context, req *dispatchv1.ListOrgUnitsRequest) (*dispatchv1.ListOrgUnitsResponse, error) {
	units, err := s.App.ListOrgUnits(ctx, tenant.Or(req.GetTenantId()))
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &dispatchv1.ListOrgUnitsResponse{}
	for _, u := range units {
		resp.Units = append(resp.Units, unitProto(u))
	}
	return resp, nil
}

// UpsertAgent registers an agent or updates one.
func (s *Server) UpsertAgent(ctx context.Context, req *dispatchv1.UpsertAgentRequest) (*dispatchv1.UpsertAgentResponse, error) {
	a, err := agentFromProto(req.GetAgent())
	if err != nil {
		return nil, err
	}
	stored, err := s.App.UpsertAgent(ctx, a)
	if err != nil {
		return nil, statusOf(err)
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
	agents, err := s.App.ListAgents(ctx, tenant.Or(req.GetTenantId()), req.GetGroup(), size+1, after)
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &dispatchv1.ListAgentsResponse{}
	agents, resp.NextPageToken = page.Trim(agents, size, func(last task.Agent) any { return last.ID })
	for _, a := range agents {
		resp.Agents = append(resp.Agents, agentProto(a))
	}
	return resp, nil
}

// ClaimNextTask leases the most urgent task the agent may take, waiting up
// to req.wait for one; a retry (the same request_id) answers the task the
// first call claimed while the agent still holds it. The response has no
// task when none fits.
func (s *Server) ClaimNextTask(ctx context.Context, req *dispatchv1.ClaimNextTaskRequest) (*dispatchv1.ClaimNextTaskResponse, error) {
	// agent_id, wait (0 to app.MaxWait) and request_id keep
	// dispatch.proto's rules (checked before this runs).
	agentID := strings.TrimSpace(req.GetAgentId())
	wait := req.GetWait().AsDuration()
	t, found, err := s.App.ClaimNext(ctx, app.ClaimCall{Tenant: tenant.Or(req.GetTenantId()), AgentID: agentID,
		RequestID: req.GetRequestId(), Wait: wait})
	if err != nil {
		return nil, statusOf(err)
	}
	if !found {
		return &dispatchv1.ClaimNextTaskResponse{}, nil
	}
	return &dispatchv1.ClaimNextTaskResponse{Task: taskProto(t)}, nil
}

// HeartbeatTask extends the lease of a task the agent holds.
func (s *Server) HeartbeatTask(ctx context.Context, req *dispatchv1.HeartbeatTaskRequest) (*dispatchv1.HeartbeatTaskResponse, error) {
	var bad invalid.List
	taskID, agentID := taskAndAgent(&bad, req.GetTaskId(), req.GetAgentId())
	token := req.GetLeaseToken() // 0 or more: dispatch.proto's rule
	if err := bad.Err(); err != nil {
		return nil, err
	}
	t, err := s.App.Heartbeat(ctx, tenant.Or(req.GetTenantId()), taskID, agentID, token)
	if err != nil {
		return nil, statusOf(err)
	}
	return &dispatchv1.HeartbeatTaskResponse{Task: taskProto(t)}, nil
}

// ListTasks lists tasks by deadline.
func (s *Server) ListTasks(ctx context.Context, req *dispatchv1.ListTasksRequest) (*dispatchv1.ListTasksResponse, error) {
	size, err := page.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	if err := task.CheckStatus(req.GetStatus()); err != nil {
		return nil, err
	}
	var cur app.TaskCursor
	if err := page.Cursor(req.GetPageToken(), &cur); err != nil {
		return nil, err
	}
	tasks, err := s.App.ListTasks(ctx, app.TaskQuery{Tenant: tenant.Or(req.GetTenantId()), AgentID: req.GetAgentId(), Status: req.GetStatus(),
		Group: req.GetGroup(), LeaderID: req.GetLeaderId(), After: cur, Limit: size + 1})
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &dispatchv1.ListTasksResponse{}
	tasks, resp.NextPageToken = page.Trim(tasks, size, func(last task.Task) any { return app.TaskCursorOf(last) })
	for _, t := range tasks {
		resp.Tasks = append(resp.Tasks, taskProto(t))
	}
	return resp, nil
}

// RecordAttempt records one attempt.
func (s *Server) RecordAttempt(ctx context.Context, req *dispatchv1.RecordAttemptRequest) (*dispatchv1.RecordAttemptResponse, error) {
	var bad invalid.List
	taskID, agentID := taskAndAgent(&bad, req.GetTaskId(), req.GetAgentId())
	token := req.GetLeaseToken() // 0 or more: dispatch.proto's rule
	if err := task.CheckDisposition(req.GetDisposition()); err != nil {
		b, _ := invalid.As(err)
		for _, v := range b.Violations {
			bad.Add(v.Field, v.Rule)
		}
	}
	var callBack time.Time
	if req.GetCallBackAt() != nil {
		if !req.GetCallBackAt().IsValid() {
			bad.Add("call_back_at", "must be a valid time")
		} else {
			callBack = req.GetCallBackAt().AsTime()
		}
	}
	var occurred time.Time
	if req.GetOccurredAt() != nil {
		if !req.GetOccurredAt().IsValid() {
			bad.Add("occurred_at", "must be a valid time")
		} else {
			occurred = req.GetOccurredAt().AsTime()
		}
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	res, err := s.App.RecordAttempt(ctx, app.Attempt{Tenant: tenant.Or(req.GetTenantId()), TaskID: taskID, AgentID: agentID, LeaseToken: token,
		Disposition: req.GetDisposition(), CallBackAt: callBack, Note: req.GetNote(), OccurredAt: occurred})
	if err != nil {
		return nil, statusOf(err)
	}
	return &dispatchv1.RecordAttemptResponse{Task: taskProto(res.Task), Attempt: int32(res.Attempt), NextAttemptAt: timestamp(res.Next)}, nil
}

// ReleaseTask gives a task back to the queue.
func (s *Server) ReleaseTask(ctx context.Context, req *dispatchv1.ReleaseTaskRequest) (*dispatchv1.ReleaseTaskResponse, error) {
	var bad invalid.List
	taskID, agentID := taskAndAgent(&bad, req.GetTaskId(), req.GetAgentId())
	token := req.GetLeaseToken() // 0 or more: dispatch.proto's rule
	if err := bad.Err(); err != nil {
		return nil, err
	}
	t, err := s.App.Release(ctx, tenant.Or(req.GetTenantId()), taskID, agentID, token)
	if err != nil {
		return nil, statusOf(err)
	}
	return &dispatchv1.ReleaseTaskResponse{Task: taskProto(t)}, nil
}

// ReassignTask moves a task to another agent (leaders only).
func (s *Server) ReassignTask(ctx context.Context, req *dispatchv1.ReassignTaskRequest) (*dispatchv1.ReassignTaskResponse, error) {
	taskID, leaderID, to := strings.TrimSpace(req.GetTaskId()), strings.TrimSpace(req.GetLeaderId()), strings.TrimSpace(req.GetToAgentId())
	t, err := s.App.Reassign(ctx, tenant.Or(req.GetTenantId()), taskID, leaderID, to, req.GetReason())
	if err != nil {
		return nil, statusOf(err)
	}
	return &dispatchv1.ReassignTaskResponse{Task: taskProto(t)}, nil
}

// ListDeadlineTasks lists active tasks near or past their deadline.
func (s *Server) ListDeadlineTasks(ctx context.Context, req *dispatchv1.ListDeadlineTasksRequest) (*dispatchv1.ListDeadlineTasksResponse, error) {
	size, err := page.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var within *time.Duration
	if req.GetWithin() != nil {
		d := req.GetWithin().AsDuration() // not negative: dispatch.proto's rule
		within = &d
	}
	var cur app.DeadlineCursor
	if err := page.Cursor(req.GetPageToken(), &cur); err != nil {
		return nil, err
	}
	tasks, err := s.App.ListDeadlineTasks(ctx, app.DeadlineQuery{Tenant: tenant.Or(req.GetTenantId()), Within: within, Group: req.GetGroup(),
		LeaderID: req.GetLeaderId(), After: cur, Limit: size + 1})
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &dispatchv1.ListDeadlineTasksResponse{}
	tasks, resp.NextPageToken = page.Trim(tasks, size, func(last app.DeadlineTask) any { return app.DeadlineCursorOf(last.Task) })
	for _, t := range tasks {
		resp.Tasks = append(resp.Tasks, &dispatchv1.DeadlineTask{Task: taskProto(t.Task), Stage: t.Stage})
	}
	return resp, nil
}

// UpsertTemplate stores a policy's message template.
func (s *Server) UpsertTemplate(ctx context.Context, req *dispatchv1.UpsertTemplateRequest) (*dispatchv1.UpsertTemplateResponse, error) {
	p := req.GetTemplate()
	if p.GetKind() != "" {
		return s.upsertKindTemplate(ctx, p)
	}
	stored, err := s.App.UpsertTemplate(ctx, message.Template{Tenant: tenant.Or(p.GetTenantId()), PolicyID: p.GetPolicyId(), Channel: p.GetChannel(),
		Subject: p.GetSubject(), Greeting: p.GetGreeting(), Body: p.GetBody(), Footer: p.GetFooter(), Preset: p.GetPreset()})
	if err != nil {
		return nil, statusOf(err)
	}
	return &dispatchv1.UpsertTemplateResponse{Template: &dispatchv1.Template{TenantId: stored.Tenant, PolicyId: stored.PolicyID,
		Channel: stored.Channel, Subject: stored.Subject, Greeting: stored.Greeting, Body: stored.Body, Footer: stored.Footer, Preset: stored.Preset}}, nil
}

// SetCustomerVariables replaces a customer's template variables.
func (s *Server) SetCustomerVariables(ctx context.Context, req *dispatchv1.SetCustomerVariablesRequest) (*dispatchv1.SetCustomerVariablesResponse, error) {
	// customer_id is not blank and every key a name: dispatch.proto's rules.
	customerID := strings.TrimSpace(req.GetCustomerId())
	vars := req.GetVariables()
	if vars == nil {
		vars = map[string]string{}
	}
	if err := s.App.SetCustomerVariables(ctx, tenant.Or(req.GetTenantId()), customerID, vars); err != nil {
		return nil, statusOf(err)
	}
	return &dispatchv1.SetCustomerVariablesResponse{Variables: vars}, nil
}

// ListMessages lists sent messages, newest first.
func (s *Server) ListMessages(ctx context.Context, req *dispatchv1.ListMessagesRequest) (*dispatchv1.ListMessagesResponse, error) {
	size, err := page.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var before string
	if err := page.Cursor(req.GetPageToken(), &before); err != nil {
		return nil, err
	}
	msgs, err := s.App.ListMessages(ctx, tenant.Or(req.GetTenantId()), strings.TrimSpace(req.GetTaskId()), before, size+1)
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &dispatchv1.ListMessagesResponse{}
	msgs, resp.NextPageToken = page.Trim(msgs, size, func(last message.Message) any { return last.ID })
	for _, m := range msgs {
		resp.Messages = append(resp.Messages, messageProto(m))
	}
	return resp, nil
}

// RecordDeliveryReceipt records a provider's delivery report.
func (s *Server) RecordDeliveryReceipt(ctx context.Context, req *dispatchv1.RecordDeliveryReceiptRequest) (*dispatchv1.RecordDeliveryReceiptResponse, error) {
	provider, id := strings.TrimSpace(req.GetProvider()), strings.TrimSpace(req.GetProviderMessageId())
	m, err := s.App.RecordReceipt(ctx, provider, sender.Receipt{ProviderMessageID: id, Delivered: req.GetDelivered(), Error: req.GetError()})
	if err != nil {
		return nil, statusOf(err)
	}
	return &dispatchv1.RecordDeliveryReceiptResponse{Message: messageProto(m)}, nil
}

func unitProto(u task.OrgUnit) *dispatchv1.OrgUnit {
	return &dispatchv1.OrgUnit{Id: u.ID, TenantId: u.Tenant, Name: u.Name, ParentId: u.ParentID, Kind: u.Kind, LeaderId: u.LeaderID}
}

// roleProto is the API's Role of a domain role: the same word
// (ROLE_DEPARTMENT_OWNER is "department_owner").
func roleProto(r string) dispatchv1.Role {
	role, _ := enum.Parse[dispatchv1.Role](r)
	return role
}

func agentFromProto(p *dispatchv1.Agent) (task.Agent, error) {
	a := task.Agent{Tenant: p.GetTenantId(), ID: p.GetId(), Name: p.GetName(), Groups: p.GetGroups(), OrgUnit: p.GetOrgUnit(),
		Capacity: int(p.GetCapacity()), Inactive: p.Active != nil && !p.GetActive()}
	if p.GetRole() != dispatchv1.Role_ROLE_UNSPECIFIED {
		r, ok := task.ParseRole(enum.Name(p.GetRole()))
		if !ok {
			return a, invalid.New("agent.role", fmt.Sprintf("must be a known role, not %d", p.GetRole()))
		}
		a.Role = r
	}
	a.Skills = task.Skills{Languages: p.GetSkills().GetLanguages(), ProductLines: p.GetSkills().GetProductLines(), Regions: p.GetSkills().GetRegions()}
	if sh := p.GetShift(); sh != nil {
		a.Shift = task.Shift{Start: int(sh.GetStartMinute()), End: int(sh.GetEndMinute()), TimeZone: sh.GetTimeZone()}
		for _, d := range sh.GetWeekdays() {
			a.Shift.Weekdays = append(a.Shift.Weekdays, int(d))
		}
	}
	return a, nil
}

func agentProto(a task.Agent) *dispatchv1.Agent {
	active := !a.Inactive
	p := &dispatchv1.Agent{Id: a.ID, TenantId: a.Tenant, Name: a.Name, Groups: a.Groups, OrgUnit: a.OrgUnit, Role: roleProto(a.Role),
		Capacity: int32(a.Capacity), Active: &active, Presence: presenceProto(a.Presence.State), PresenceReason: a.Presence.Reason,
		PresenceSince: timestamp(a.Presence.Since)}
	if len(a.Skills.Languages)+len(a.Skills.ProductLines)+len(a.Skills.Regions) > 0 {
		p.Skills = &dispatchv1.Skills{Languages: a.Skills.Languages, ProductLines: a.Skills.ProductLines, Regions: a.Skills.Regions}
	}
	if len(a.Shift.Weekdays) > 0 || a.Shift.Start != a.Shift.End || a.Shift.TimeZone != "" {
		p.Shift = &dispatchv1.Shift{StartMinute: int32(a.Shift.Start), EndMinute: int32(a.Shift.End), TimeZone: a.Shift.TimeZone}
		for _, d := range a.Shift.Weekdays {
			p.Shift.Weekdays = append(p.Shift.Weekdays, int32(d))
		}
	}
	return p
}

func taskProto(t task.Task) *dispatchv1.Task {
	return &dispatchv1.Task{
		Id:              t.ID,
		TenantId:        t.Tenant,
		VisitId:         t.VisitID,
		Customer:        wire.CustomerProto(t.Customer),
		Channel:         t.Channel,
		Group:           t.Group,
		DueAt:           timestamp(t.DueAt),
		Deadline:        timestamp(t.Deadline),
		Status:          t.Status,
		AgentId:         t.AgentID,
		LeaseExpiresAt:  timestamp(t.LeaseExpiresAt),
		ServiceType:     t.ServiceType,
		OrgUnit:         t.OrgUnit,
		Severity:        t.Severity,
		Attempts:        int32(t.Attempts),
		AvailableAt:     timestamp(t.AvailableAt),
		PolicyId:        t.PolicyID,
		RequiredRole:    roleProto(t.RequiredRole),
		ProductCategory: t.ProductCategory,
		LastDisposition: t.LastDisposition,
		LeaseToken:      t.LeaseToken,
	}
}

func messageProto(m message.Message) *dispatchv1.Message {
	return &dispatchv1.Message{Id: m.ID, TenantId: m.Tenant, TaskId: m.TaskID, VisitId: m.VisitID, Channel: m.Channel, To: m.To,
		Subject: m.Subject, Body: m.Body, IdempotencyKey: m.IdempotencyKey, Status: m.Status, Tries: int32(m.Tries),
		Provider: m.Provider, ProviderMessageId: m.ProviderMessageID, Error: m.Error, AppointmentId: m.AppointmentID,
		CreatedAt: timestamp(m.CreatedAt), UpdatedAt: timestamp(m.UpdatedAt)}
}

// timestamp converts a time, leaving the zero time absent.
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// RevealTaskContact gives the agent holding a task its customer's address
// (click-to-dial), audited here and in intake.
func (s *Server) RevealTaskContact(ctx context.Context, req *dispatchv1.RevealTaskContactRequest) (*dispatchv1.RevealTaskContactResponse, error) {
	var bad invalid.List
	p, _ := auth.From(ctx)
	taskID, agentID := taskAndAgent(&bad, req.GetTaskId(), p.Actor())
	token := req.GetLeaseToken() // 0 or more: dispatch.proto's rule
	ch := req.GetChannel()
	if ch == typesv1.Channel_CHANNEL_UNSPECIFIED { // else phone, SMS or email: dispatch.proto's rule
		ch = typesv1.Channel_CHANNEL_PHONE
	}
	purpose := strings.TrimSpace(req.GetPurpose())
	if purpose == "" {
		purpose = "follow-up call"
	}
	if !audit.ValidPurpose(purpose) {
		bad.Add("purpose", audit.PurposeRule)
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	c, err := s.App.RevealTaskContact(ctx, tenant.Or(req.GetTenantId()), taskID, agentID, token, ch, purpose)
	if err != nil {
		return nil, statusOf(err)
	}
	return &dispatchv1.RevealTaskContactResponse{Address: c.Address, Name: c.Name}, nil
}
