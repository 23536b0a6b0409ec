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
}

// OfPolicy returns the questionnaire policyID's visits use in tenant, as
// feedback resolves it (GetPolicyQuestionnaire: the tenant's link, else
// configuration's; the version LogVisit checks answers against). ErrNone
// when it has none; ErrUnavailable when feedback could not answer.
func (f *Feedback) OfPolicy(ctx context.Context, tenant, policyID string) (*feedbackv1.Questionnaire, error) {
	resp, err := f.Client.GetPolicyQuestionnaire(ctx, &feedbackv1.GetPolicyQuestionnaireRequest{TenantId: tenant, PolicyId: policyID})
	switch status.Code(err) {
	case codes.OK:
		return resp.GetQuestionnaire(), nil
	case codes.NotFound:
		return nil, fmt.Errorf("%w: policy %q", ErrNone, policyID)
	default:
		return nil, fmt.Errorf("%w: policy %q: %w", ErrUnavailable, policyID, err)
	}
}
