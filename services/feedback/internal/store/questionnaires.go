package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"

	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
)

// EnsureSeeds stores the seed questionnaires that are missing.
func (s *Store) EnsureSeeds(ctx context.Context, seeds []*feedbackv1.Questionnaire, now time.Time) error {
	return pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		for _, q := range seeds {
			q.CreatedAt = timestamppb.New(now)
			if err := insertQuestionnaire(ctx, tx, q, true); err != nil {
				return err
			}
		}
		return nil
	})
}

func insertQuestionnaire(ctx context.Context, tx pgx.Tx, q *feedbackv1.Questionnaire, ignoreExisting bool) error {
	questions, err := jsonList(q.Questions)
	if err != nil {
		return err
	}
	sql := `INSERT INTO questionnaires (tenant_id, id, version, name, description, seed, questions, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	if ignoreExisting {
		sql += ` ON CONFLICT DO NOTHING`
	}
	if _, err := tx.Exec(ctx, sql, q.TenantId, q.Id, q.Version, q.Name, q.Description, q.Seed, questions, q.CreatedAt.AsTime()); err != nil {
		return fmt.Errorf("store: insert questionnaire %s v%d: %w", q.Id, q.Version, err)
	}
	return nil
}

// CreateQuestionnaire stores q as the next version of its id within tx
// (version 1 for a new id; the seed templates' versions count too) and sets
// q.Version.
func CreateQuestionnaire(ctx context.Context, tx pgx.Tx, q *feedbackv1.Questionnaire) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('questionnaire:' || $1 || ':' || $2, 0))`, q.TenantId, q.Id); err != nil {
		return fmt.Errorf("store: lock questionnaire %s: %w", q.Id, err)
	}
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) + 1 FROM questionnaires WHERE tenant_id IN ($1, '*') AND id = $2`,
		q.TenantId, q.Id).Scan(&q.Version); err != nil {
		return fmt.Errorf("store: next version of questionnaire %s: %w", q.Id, err)
	}
	return insertQuestionnaire(ctx, tx, q, false)
}

const questionnaireColumns = `tenant_id, id, version, name, description, seed, questions, created_at`

func scanQuestionnaire(row pgx.Row) (*feedbackv1.Questionnaire, error) {
	q := &feedbackv1.Questionnaire{}
	var questions []byte
	var created time.Time
	if err := row.Scan(&q.TenantId, &q.Id, &q.Version, &q.Name, &q.Description, &q.Seed, &questions, &created); err != nil {
		return nil, err
	}
	q.CreatedAt = timestamppb.New(created)
	var err error
	if q.Questions, err = fromJSONList[*feedbackv1.Question](questions); err != nil {
		return nil, fmt.Errorf("store: questions of %s v%d: %w", q.Id, q.Version, err)
	}
	return q, nil
}

// GetQuestionnaire returns a version of a questionnaire the tenant may use
// (its own, or a seed template), the latest when version is 0, or ErrNotFound.
func GetQuestionnaire(ctx context.Context, q Querier, tenant, id string, version int32) (*feedbackv1.Questionnaire, error) {
	qn, err := scanQuestionnaire(q.QueryRow(ctx, `SELECT `+questionnaireColumns+` FROM questionnaires
WHERE tenant_id IN ($1, '*') AND id = $2 AND ($3 = 0 OR version = $3)
ORDER BY version DESC LIMIT 1`, tenant, id, version))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get questionnaire %s: %w", id, err)
	}
	return qn, nil
}

// ListQuestionnaires returns the latest version of each questionnaire the tenant may use, by id.
func (s *Store) ListQuestionnaires(ctx context.Context, tenant string) ([]*feedbackv1.Questionnaire, error) {
	rows, err := s.Pool.Query(ctx, `SELECT DISTINCT ON (id) `+questionnaireColumns+` FROM questionnaires
WHERE tenant_id IN ($1, '*') ORDER BY id, version DESC`, tenant)
	if err != nil {
		return nil, fmt.Errorf("store: list questionnaires: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*feedbackv1.Questionnaire, error) { return scanQuestionnaire(r) })
}

// SetPolicyQuestionnaire names the questionnaire of a policy's visits
// (tenant "*": every tenant, as configuration does).
func SetPolicyQuestionnaire(ctx context.Context, q Querier, tenant, policyID, questionnaireID string, version int32) error {
	if _, err := q.Exec(ctx, `INSERT INTO policy_questionnaires (tenant_id, policy_id, questionnaire_id, questionnaire_version) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant_id, policy_id) DO UPDATE SET questionnaire_id = EXCLUDED.questionnaire_id,
  questionnaire_version = EXCLUDED.questionnaire_version, updated_at = now()`, tenant, policyID, questionnaireID, version); err != nil {
		return fmt.Errorf("store: questionnaire of policy %s: %w", policyID, err)
	}
	return nil
}

// ConfigurePolicies replaces the every-tenant policy → questionnaire
// entries with those of configuration.
func (s *Store) ConfigurePolicies(ctx context.Context, entries map[string]string) error {
	return pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM policy_questionnaires WHERE tenant_id = '*'`); err != nil {
			return fmt.Errorf("store: clear configured policies: %w", err)
		}
		for policy, qid := range entries {
			if _, err := GetQuestionnaire(ctx, tx, questionnaire.AllTenants, qid, 0); err != nil {
				return fmt.Errorf("store: policy %s names questionnaire %s, which is not a seed template: %w", policy, qid, err)
			}
			if err := SetPolicyQuestionnaire(ctx, tx, questionnaire.AllTenants, policy, qid, 0); err != nil {
				return err
			}
		}
		return nil
	})
}

// PolicyQuestionnaire returns the questionnaire a policy's visits use in a
// tenant (the tenant's own entry before the every-tenant one), or nil when
// the policy names none.
func PolicyQuestionnaire(ctx context.Context, q Querier, tenant, policyID string) (*feedbackv1.Questionnaire, error) {
	var id string
	var version int32
	err := q.QueryRow(ctx, `SELECT questionnaire_id, questionnaire_version FROM policy_questionnaires
WHERE tenant_id IN ($1, '*') AND policy_id = $2 ORDER BY tenant_id = '*' LIMIT 1`, tenant, policyID).Scan(&id, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: questionnaire of policy %s: %w", policyID, err)
	}
	qn, err := GetQuestionnaire(ctx, q, tenant, id, version)
	if err != nil {
		// Not ErrNotFound for the caller: the policy's entry is broken, not the request.
		return nil, fmt.Errorf("store: policy %s names questionnaire %s v%d: %v", policyID, id, version, err)
	}
	return qn, nil
}

// InsertReview stores a QA review within tx.
func InsertReview(ctx context.Context, tx pgx.Tx, r *feedbackv1.Review) error {
	scores, err := jsonList(r.Scores)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO reviews (id, tenant_id, record_id, agent_id, reviewer_id, scores, score, comments, at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, r.Id, r.TenantId, r.RecordId, r.AgentId, r.ReviewerId, scores, r.Score, r.Comments, r.At.AsTime()); err != nil {
		return fmt.Errorf("store: insert review of record %s: %w", r.RecordId, err)
	}
	return nil
}
