package app

import (
	"context"
	"errors"
	"slices"
	"time"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/services/dispatch/internal/message"
	"github.com/huifang/huifang/services/dispatch/internal/questionnaires"
	"github.com/huifang/huifang/services/dispatch/internal/store"
	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// Questionnaires gives the questionnaire a visit's policy uses
// (questionnaires.Feedback: feedback's): questionnaires.ErrNone when it has
// none, another error when it cannot be had for the moment.
type Questionnaires interface {
	OfPolicy(ctx context.Context, tenant, policyID string) (*feedbackv1.Questionnaire, error)
}

// How the questionnaire of a task context was had.
const (
	QuestionnaireOK          = "ok"
	QuestionnaireNone        = "none"
	QuestionnaireUnavailable = "unavailable"
)

// questionnaireTimeout bounds the call to feedback: a slow feedback does
// not hold the agent's screen.
const questionnaireTimeout = 3 * time.Second

// ContextAttempts is how many attempts a task context shows (the first ones).
const ContextAttempts = 50

// TaskContext is what an agent's screen needs for the task at hand.
type TaskContext struct {
	Task     task.Task
	Details  store.TaskDetails
	Attempts []store.Attempt
	// Questionnaire is nil unless QuestionnaireStatus is QuestionnaireOK.
	Questionnaire       *feedbackv1.Questionnaire
	QuestionnaireStatus string
	Script              message.Script
	// ScriptSource is "tenant" or "default".
	ScriptSource string
	// Appointment is the task's booked appointment, when it has one.
	Appointment *task.Appointment
}

// GetTaskContext gathers a task's context in one call: the task (customer
// masked), the service details its visit carried, its attempts, the
// questionnaire of its policy (from feedback: when feedback cannot answer,
// the rest is answered and the questionnaire marked unavailable), the call
// script rendered with masked variables, and its booked appointment. A
// restricted caller is the agent holding the task (its claim's token; 0:
// checked by agent only) or a leader of the task's group.
func (a *App) GetTaskContext(ctx context.Context, tenant, taskID string, token int64) (TaskContext, error) {
	t, err := store.Task(ctx, a.DB, tenant, taskID)
	if err != nil {
		return TaskContext{}, err
	}
	if p, ok := auth.Restricted(ctx, auth.Director); ok {
		if err := a.contextInScope(ctx, p, t, token); err != nil {
			return TaskContext{}, err
		}
	}
	out := TaskContext{Task: t}
	if out.Details, err = store.DetailsOfTask(ctx, a.DB, t.ID); err != nil {
		return TaskContext{}, err
	}
	if out.Attempts, err = store.AttemptsAfter(ctx, a.DB, t.ID, 0, ContextAttempts); err != nil {
		return TaskContext{}, err
	}
	if ap, ok, err := store.BookedAppointment(ctx, a.DB, tenant, t.ID); err != nil {
		return TaskContext{}, err
	} else if ok {
		ap = a.shown(ctx, ap)
		out.Appointment = &ap
	}
	if out.Script, out.ScriptSource, err = a.script(ctx, t); err != nil {
		return TaskContext{}, err
	}
	out.Questionnaire, out.QuestionnaireStatus = a.questionnaire(ctx, t)
	return out, nil
}

// contextInScope: the agent holding t, or a leader of t's group.
func (a *App) contextInScope(ctx context.Context, p auth.Principal, t task.Task, token int64) error {
	if p.AgentID != "" && t.AgentID == p.AgentID {
		return t.HeldBy(task.Holder{AgentID: p.AgentID, Token: token})
	}
	if p.Has(auth.Leader) && p.AgentID != "" && t.Group != "" {
		_, groups, err := a.leaderGroups(ctx, t.Tenant, p.AgentID)
		if err != nil && !errors.Is(err, store.ErrAgentNotFound) {
			return err
		}
		if slices.Contains(groups, t.Group) {
			return nil
		}
	}
	return auth.Deny("task_id", "only the agent holding the task or a leader of its group")
}

// questionnaire asks feedback for the questionnaire of t's policy.
func (a *App) questionnaire(ctx context.Context, t task.Task) (*feedbackv1.Questionnaire, string) {
	if a.Questionnaires == nil {
		return nil, QuestionnaireUnavailable
	}
	if t.PolicyID == "" {
		return nil, QuestionnaireNone
	}
	qctx, cancel := context.WithTimeout(ctx, questionnaireTimeout)
	defer cancel()
	q, err := a.Questionnaires.OfPolicy(qctx, t.Tenant, t.PolicyID)
	switch {
	case err == nil && q != nil:
		return q, QuestionnaireOK
	case err == nil, errors.Is(err, questionnaires.ErrNone):
		return nil, QuestionnaireNone
	}
	a.log().WarnContext(ctx, "task context: the questionnaire could not be had from feedback", "task", t.ID, "policy", t.PolicyID, "err", err)
	return nil, QuestionnaireUnavailable
}

// script renders the call script of t: the tenant's script for the service
// type, else its default one, else the built-in one (seed 004), with
// masked variables ({name} is the masked name); a tenant's script that
// names a variable without a value falls back to the built-in one.
func (a *App) script(ctx context.Context, t task.Task) (message.Script, string, error) {
	stored, err := store.KindTemplates(ctx, a.DB, t.Tenant, message.KindScript, t.ServiceType)
	if err != nil {
		return message.Script{}, "", err
	}
	own, err := store.CustomerVariables(ctx, a.DB, t.Tenant, t.CustomerID())
	if err != nil {
		return message.Script{}, "", err
	}
	name := t.Customer.NameMasked
	if name == "" {
		name = "客户"
	}
	vars := message.Vars(message.Builtins{Name: name, CustomerID: t.CustomerID(), VisitID: t.VisitID, OrgUnit: t.OrgUnit,
		ServiceType: t.ServiceType}, own)
	vars["name"] = name // the masked name, whatever the customer's variables say
	vars["agent"] = t.AgentID
	if t.AgentID != "" {
		if ag, err := store.Agent(ctx, a.DB, t.Tenant, t.AgentID); err == nil {
			vars["agent"] = ag.Name
		} else if !errors.Is(err, store.ErrAgentNotFound) {
			return message.Script{}, "", err
		}
	}
	for _, k := range []string{"org_unit", "service_type", "agent"} {
		if vars[k] == "" {
			vars[k] = "-"
		}
	}
	tpl, own2 := message.PickKind(stored, t.Tenant, message.KindScript, t.ServiceType)
	s, err := message.RenderScript(tpl, vars)
	if err == nil {
		if own2 {
			return s, "tenant", nil
		}
		return s, "default", nil
	}
	a.log().WarnContext(ctx, "task context: the tenant's script names a variable without a value; the built-in script is shown",
		"task", t.ID, "err", err)
	s, err = message.RenderScript(message.DefaultScript(t.Tenant), vars)
	return s, "default", err
}
