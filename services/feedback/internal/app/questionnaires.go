package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/store"
)

// CreateQuestionnaire stores a questionnaire; see CreateQuestionnaireTx.
func (a *App) CreateQuestionnaire(ctx context.Context, q questionnaire.Questionnaire) (questionnaire.Questionnaire, error) {
	return inTx(ctx, a, func(tx pgx.Tx) (questionnaire.Questionnaire, error) { return a.CreateQuestionnaireTx(ctx, tx, q) })
}

// CreateQuestionnaireTx stores a questionnaire of a tenant within the
// caller's transaction as the next version of its id: version 1 for a new
// id, and an existing id (the seed templates' included) gets the next one.
func (a *App) CreateQuestionnaireTx(ctx context.Context, tx pgx.Tx, q questionnaire.Questionnaire) (questionnaire.Questionnaire, error) {
	q.TenantID = tenant.Or(q.TenantID)
	if q.TenantID == questionnaire.AllTenants {
		return questionnaire.Questionnaire{}, invalid.New("questionnaire.tenant_id", "\"*\" holds the seed templates; create questionnaires in a tenant")
	}
	questionnaire.Normalize(&q)
	if err := questionnaire.Validate(q, "questionnaire"); err != nil {
		return questionnaire.Questionnaire{}, err
	}
	q.CreatedAt, q.Seed = a.now(), ""
	if err := store.LockQuestionnaireID(ctx, tx, q.TenantID, q.ID); err != nil {
		return questionnaire.Questionnaire{}, err
	}
	latest, err := store.LatestVersion(ctx, tx, q.TenantID, q.ID)
	if err != nil {
		return questionnaire.Questionnaire{}, err
	}
	q.Version = latest + 1
	return q, store.InsertQuestionnaire(ctx, tx, q)
}

// GetQuestionnaire returns one version of a questionnaire the tenant may
// use (its own, or a seed template), the latest for version 0.
func (a *App) GetQuestionnaire(ctx context.Context, tenantID, id string, version int32) (questionnaire.Questionnaire, error) {
	id = strings.TrimSpace(id) // not blank, version not negative: feedback.proto's rules
	q, err := store.GetQuestionnaire(ctx, a.DB, tenant.Or(tenantID), id, version)
	if errors.Is(err, store.ErrNotFound) {
		return questionnaire.Questionnaire{}, refuse(ErrNotFound, "questionnaire %s version %d not found", id, version)
	}
	return q, err
}

// GetPolicyQuestionnaire returns the questionnaire version the visits of
// a policy use in a tenant, as LogVisit resolves it; ErrNotFound when the
// policy names none.
func (a *App) GetPolicyQuestionnaire(ctx context.Context, tenantID, policyID string) (questionnaire.Questionnaire, error) {
	policyID = strings.TrimSpace(policyID) // not blank: feedback.proto's rule
	tenantID = tenant.Or(tenantID)
	id, version, found, err := store.PolicyQuestionnaire(ctx, a.DB, tenantID, policyID)
	switch {
	case err != nil:
		return questionnaire.Questionnaire{}, err
	case !found:
		return questionnaire.Questionnaire{}, refuse(ErrNotFound, "policy %s names no questionnaire", policyID)
	}
	q, err := store.GetQuestionnaire(ctx, a.DB, tenantID, id, version)
	if errors.Is(err, store.ErrNotFound) {
		return questionnaire.Questionnaire{}, refuse(ErrNotFound, "policy %s names questionnaire %s version %d, which is not found", policyID, id, version)
	}
	return q, err
}

// ListQuestionnaires lists the latest version of each questionnaire a tenant may use.
func (a *App) ListQuestionnaires(ctx context.Context, tenantID string) ([]questionnaire.Questionnaire, error) {
	return store.ListQuestionnaires(ctx, a.DB, tenant.Or(tenantID))
}

// PolicyQuestionnaire names the questionnaire of a scheduler policy's visits in a tenant.
type PolicyQuestionnaire struct {
	Tenant          string
	PolicyID        string
	QuestionnaireID string
	// Version fixes a version; 0 is always the latest.
	Version int32
}

// SetPolicyQuestionnaire names the questionnaire a policy's visits use; see SetPolicyQuestionnaireTx.
func (a *App) SetPolicyQuestionnaire(ctx context.Context, in PolicyQuestionnaire) error {
	_, err := inTx(ctx, a, func(tx pgx.Tx) (struct{}, error) { return struct{}{}, a.SetPolicyQuestionnaireTx(ctx, tx, in) })
	return err
}

// SetPolicyQuestionnaireTx names, within the caller's transaction, the
// questionnaire (a version of it the tenant may use) a policy's visits
// use in a tenant; the tenant's entry comes before configuration's.
func (a *App) SetPolicyQuestionnaireTx(ctx context.Context, tx pgx.Tx, in PolicyQuestionnaire) error {
	tenantID := tenant.Or(in.Tenant)
	policy, qid := strings.TrimSpace(in.PolicyID), strings.TrimSpace(in.QuestionnaireID)
	var l invalid.List
	if policy == "" {
		l.Add("policy_id", "is required: the scheduler policy's id, as VisitDue carries it")
	}
	if qid == "" {
		l.Add("questionnaire_id", "is required")
	}
	if in.Version < 0 {
		l.Add("questionnaire_version", "must not be negative; 0 is always the latest")
	}
	if tenantID == questionnaire.AllTenants {
		l.Add("tenant_id", "\"*\" entries come from configuration (POLICY_QUESTIONNAIRES)")
	}
	if err := l.Err(); err != nil {
		return err
	}
	if _, err := store.GetQuestionnaire(ctx, tx, tenantID, qid, in.Version); errors.Is(err, store.ErrNotFound) {
		return invalid.New("questionnaire_id", fmt.Sprintf("tenant %s has no questionnaire %q version %d", tenantID, qid, in.Version))
	} else if err != nil {
		return err
	}
	return store.SetPolicyQuestionnaire(ctx, tx, tenantID, policy, qid, in.Version)
}

// Prepare readies the service at start: the seed templates are stored
// (EnsureSeeds) and the configured policy questionnaires replace the
// previous configuration's (ConfigurePolicies).
func (a *App) Prepare(ctx context.Context, policies map[string]string) error {
	if err := a.EnsureSeeds(ctx); err != nil {
		return err
	}
	return a.ConfigurePolicies(ctx, policies)
}

// EnsureSeeds stores the seed templates that are missing.
func (a *App) EnsureSeeds(ctx context.Context) error {
	now := a.now()
	_, err := inTx(ctx, a, func(tx pgx.Tx) (struct{}, error) {
		for _, q := range questionnaire.Seeds() {
			q.CreatedAt = now
			if err := store.EnsureQuestionnaire(ctx, tx, q); err != nil {
				return struct{}{}, err
			}
		}
		return struct{}{}, nil
	})
	return err
}

// ConfigurePolicies replaces the every-tenant policy → questionnaire
// entries with entries (policy_id → questionnaire_id, latest version);
// each must name a seed template.
func (a *App) ConfigurePolicies(ctx context.Context, entries map[string]string) error {
	_, err := inTx(ctx, a, func(tx pgx.Tx) (struct{}, error) {
		if err := store.ClearPolicyQuestionnaires(ctx, tx, questionnaire.AllTenants); err != nil {
			return struct{}{}, err
		}
		for policy, qid := range entries {
			if _, err := store.GetQuestionnaire(ctx, tx, questionnaire.AllTenants, qid, 0); err != nil {
				return struct{}{}, fmt.Errorf("policy %s names questionnaire %s, which is not a seed template: %w", policy, qid, err)
			}
			if err := store.SetPolicyQuestionnaire(ctx, tx, questionnaire.AllTenants, policy, qid, 0); err != nil {
				return struct{}{}, err
			}
		}
		return struct{}{}, nil
	})
	return err
}
