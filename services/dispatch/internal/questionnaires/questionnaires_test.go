package questionnaires_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"

	"github.com/huifang/huifang/services/dispatch/internal/questionnaires"
)

// client answers GetPolicyQuestionnaire with err, or q-1.
type client struct {
	feedbackv1.FeedbackServiceClient
	err  error
	asks []*feedbackv1.GetPolicyQuestionnaireRequest
}

func (c *client) GetPolicyQuestionnaire(_ context.Context, req *feedbackv1.GetPolicyQuestionnaireRequest, _ ...grpc.CallOption) (*feedbackv1.GetPolicyQuestionnaireResponse, error) {
	c.asks = append(c.asks, req)
	if c.err != nil {
		return nil, c.err
	}
	return &feedbackv1.GetPolicyQuestionnaireResponse{Questionnaire: &feedbackv1.Questionnaire{Id: "q-1"}}, nil
}

func TestOfPolicy(t *testing.T) {
	ctx := context.Background()
	c := &client{}
	f := &questionnaires.Feedback{Client: c}
	q, err := f.OfPolicy(ctx, "acme", "p-1")
	require.NoError(t, err)
	require.Equal(t, "q-1", q.GetId())
	require.Equal(t, "acme", c.asks[0].GetTenantId())
	require.Equal(t, "p-1", c.asks[0].GetPolicyId())

	c.err = status.Error(codes.NotFound, "policy p-2 names no questionnaire")
	_, err = f.OfPolicy(ctx, "acme", "p-2")
	require.ErrorIs(t, err, questionnaires.ErrNone, "no link")
	c.err = status.Error(codes.PermissionDenied, "no")
	_, err = f.OfPolicy(ctx, "acme", "p-1")
	require.ErrorIs(t, err, questionnaires.ErrUnavailable)
	c.err = status.Error(codes.Unavailable, "down")
	_, err = f.OfPolicy(ctx, "acme", "p-1")
	require.ErrorIs(t, err, questionnaires.ErrUnavailable)
}
