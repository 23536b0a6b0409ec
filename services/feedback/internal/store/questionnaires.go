package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"

	"github.com/huifang/huifang/pkg/postgres"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/wire"
)

const insertQuestionnaire = `INSERT INTO questionnaires (tenant_id, id, version, name, description, seed, questions, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`

func questionnaireArgs(q questionnaire.Questionnaire) ([]any, error) {
	questions, err := jsonList(wire.QuestionsToProto(q.Questions))
	if err != nil {
		return nil, err
	}
	return []any{q.TenantID, q.ID, q.Version, q.Name, q.Description, q.Seed, questions, q.CreatedAt}, nil
}

// InsertQuestionnaire stores a version of a questionnaire; a version that
// exists is ErrConflict.
func InsertQuestionnaire(ctx context.Context, q postgres.Querier, qn questionnaire.Questionnaire) error {
	args, err := questionnaireArgs(qn)
	if err != nil {
		return err
	}
	if _, err := q.Exec(ctx, insertQuestionnaire, args...); err != nil {
		return fmt.Errorf("store: insert questionnaire %s v%d: %w", qn.ID, qn.Version, translate(err))
	}
	return nil
}

// EnsureQuestionnaire stores a version of a questionnaire unless it is
// stored already (the seed templates, at every start).
func EnsureQuestionnaire(ctx context.Context, q postgres.Querier, qn questionnaire.Questionnaire) error {
	args, err := questionnaireArgs(qn)
	if err != nil {
		return err
	}
	if _, err := q.Exec(ctx, insertQuestionnaire+` ON CONFLICT DO NOTHING`, args...); err != nil {
		return fmt.Errorf("store: insert questionnaire %s v%d: %w", qn.ID, qn.Version, translate(err))
	}
	return nil
}

// LockQuestionnaireID holds a questionnaire id of a tenant until tx ends,
// so that two new versions of it are numbered one after another.
func LockQuestionnaireID(ctx context.Context, tx pgx.Tx, tenant, id string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('questionnaire:' || $1 || ':' || $2, 0))`, tenant, id); err != nil {
		return fmt.Errorf("store: lock questionnaire %s: %w", id, translate(err))
	}
	return nil
}

// LatestVersion returns the highest version of a questionnaire id the
// tenant or the seed templates (tenant "*") hold, 0 for none.
func LatestVersion(ctx context.Context, q postgres.Querier, tenant, id string) (int32, error) {
	var v int32
	if err := q.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM questionnaires WHERE tenant_id IN ($1, '*') AND id = $2`,
		tenant, id).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: latest version of questionnaire %s: %w", id, translate(err))
	}
	return v, nil
}

const questionnaireColumns = `tenant_id, id, version, name, description, seed, questions, created_at`

func scanQuestionnaire(row pgx.Row) (questionnaire.Questionnaire, error) {
	var q questionnaire.Questionnaire
	var questions []byte
	if err := row.Scan(&q.TenantID, &q.ID, &q.Version, &q.Name, &q.Description, &q.Seed, &questions, &q.CreatedAt); err != nil {
		return questionnaire.Questionnaire{}, err
	}
	q.CreatedAt = q.CreatedAt.UTC()
	list, err := fromJSONList[*feedbackv1.Question](questions)
	if err != nil {
		return questionnaire.Questionnaire{}, fmt.Errorf("store: questions of %s v%d: %w", q.ID, q.Version, err)
	}
	q.Questions = wire.QuestionsFromProto(list)
	return q, nil
}

// GetQuestionnaire returns a version of a questionnaire the tenant may use
// (its own, or a seed template), the latest when version is 0, or ErrNotFound.
func GetQuestionnaire(ctx context.Context, q postgres.Querier, tenant, id string, version int32) (questionnaire.Questionnaire, error) {
	qn, err := scanQuestionnaire(q.QueryRow(ctx, `SELECT `+questionnaireColumns+` FROM questionnaires
WHERE tenant_id IN ($1, '*') AND id = $2 AND ($3 = 0 OR version = $3)
ORDER BY version DESC LIMIT 1`, tenant, id, version))
	if err != nil {
		return questionnaire.Questionnaire{}, fmt.Errorf("store: get questionnaire %s: %w", id, translate(err))
	}
	return qn, nil
}

// ListQuestionnaires returns the latest version of each questionnaire the tenant may use, by id.
func ListQuestionnaires(ctx context.Context, q postgres.Querier, tenant string) ([]questionnaire.Questionnaire, error) {
	rows, err := q.Query(ctx, `SELECT DISTINCT ON (id) `+questionnaireColumns+` FROM questionnaires
WHERE tenant_id IN ($1, '*') ORDER BY id, version DESC`, tenant)
	if err != nil {
		return nil, fmt.Errorf("store: list questionnaires: %w", translate(err))
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (questionnaire.Questionnaire, error) { return scanQuestionnaire(r) })
	if err != nil {
		return nil, fmt.Errorf("store: list questionnaires: %w", translate(err))
	}
	return list, nil
}

// SetPolicyQuestionnaire names the questionnaire (and version, 0 for the
// latest) of a policy's visits in a tenant ("*": every tenant, as
// configuration does).
func SetPolicyQuestionnaire(ctx context.Context, q postgres.Querier, tenant, policyID, questionnaireID string, version int32) error {
	if _, err := q.Exec(ctx, `INSERT INTO policy_questionnaires (tenant_id, policy_id, questionnaire_id, questionnaire_version) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant_id, policy_id) DO UPDATE SET questionnaire_id = EXCLUDED.questionnaire_id,
  questionnaire_version = EXCLUDED.questionnaire_version, updated_at = now()`, tenant, policyID, questionnaireID, version); err != nil {
		return fmt.Errorf("store: questionnaire of policy %s: %w", policyID, translate(err))
	}
	return nil
}

// ClearPolicyQuestionnaires removes the policy entries of a tenant.
func ClearPolicyQuestionnaires(ctx context.Context, q postgres.Querier, tenant string) error {
	if _, err := q.Exec(ctx, `DELETE FROM policy_questionnaires WHERE tenant_id = $1`, tenant); err != nil {
		return fmt.Errorf("store: clear policies of tenant %s: %w", tenant, translate(err))
	}
	return nil
}

// PolicyQuestionnaire returns the questionnaire id and version a policy's
// visits use in a tenant: the tenant's own entry before the every-tenant
// one; found is false when the policy names none.
func PolicyQuestionnaire(ctx context.Context, q postgres.Querier, tenant, policyID string) (id string, version int32, found bool, err error) {
	err = q.QueryRow(ctx, `SELECT questionnaire_id, questionnaire_version FROM policy_questionnaires
WHERE tenant_id IN ($1, '*') AND policy_id = $2 ORDER BY tenant_id = '*' LIMIT 1`, tenant, policyID).Scan(&id, &version)
	switch err = translate(err); {
	case errors.Is(err, ErrNotFound):
		return "", 0, false, nil
	case err != nil:
		return "", 0, false, fmt.Errorf("store: questionnaire of policy %s: %w", policyID, err)
	}
	return id, version, true, nil
}
