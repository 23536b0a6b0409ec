// Package questionnaires reads, for an agent's screen, the questionnaire a
// visit's policy uses from feedback, which owns questionnaires and the
// link of a policy to one: dispatch asks feedback over gRPC at the moment
// of use (on its service account) and keeps no copy, so that a new
// version or a new link shows at once and nothing has to be kept in step.
package questionnaires

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
)

// ErrNone says that the policy has no questionnaire (none linked, or the
// linked one is unknown to feedback).
var ErrNone = errors.New("questionnaires: the policy has no questionnaire")

// ErrUnavailable says that feedback could not answer for the moment.
var ErrUnavailable = errors.New("questionnaires: feedback could not answer for the moment")

// Feedback reads questionnaires from feedback's gRPC API.
type Feedback struct {
	Client feedbackv1.FeedbackServiceClient
	// Links are the policies' questionnaires for every tenant
	// (policy_id → questionnaire_id), read from POLICY_QUESTIONNAIRES: the
	// same variable, in the same form, that feedback reads for them.
	Links map[string]string
}

// OfPolicy returns the latest version of the questionnaire policyID's
// visits use in tenant. ErrNone when it has none; ErrUnavailable when
// feedback could not answer.
func (f *Feedback) OfPolicy(ctx context.Context, tenant, policyID string) (*feedbackv1.Questionnaire, error) {
	id := f.Links[strings.TrimSpace(policyID)]
	if id == "" {
		return nil, fmt.Errorf("%w: policy %q", ErrNone, policyID)
	}
	resp, err := f.Client.GetQuestionnaire(ctx, &feedbackv1.GetQuestionnaireRequest{TenantId: tenant, Id: id})
	switch status.Code(err) {
	case codes.OK:
		return resp.GetQuestionnaire(), nil
	case codes.NotFound:
		return nil, fmt.Errorf("%w: feedback knows no questionnaire %q", ErrNone, id)
	default:
		return nil, fmt.Errorf("%w: questionnaire %q: %w", ErrUnavailable, id, err)
	}
}

// ParseLinks reads POLICY_QUESTIONNAIRES: policy_id=questionnaire_id,
// comma-separated.
func ParseLinks(spec string) (map[string]string, error) {
	out := map[string]string{}
	for _, e := range strings.Split(spec, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		policy, qid, ok := strings.Cut(e, "=")
		policy, qid = strings.TrimSpace(policy), strings.TrimSpace(qid)
		if !ok || policy == "" || qid == "" {
			return nil, fmt.Errorf("entry %q: want policy_id=questionnaire_id", e)
		}
		out[policy] = qid
	}
	return out, nil
}
