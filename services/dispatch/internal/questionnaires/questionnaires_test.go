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

// client answers GetQuestionnaire with err, or q-1.
type client struct {
	feedbackv1.FeedbackServiceClient
	err  error
	asks []*feedbackv1.GetQuestionnaireRequest
}

func (c *client) GetQuestionnaire(_ context.Context, req *feedbackv1.GetQuestionnaireRequest, _ ...grpc.CallOption) (*feedbackv1.GetQuestionnaireResponse, error) {
	c.asks = append(c.asks, req)
	if c.err != nil {
		return nil, c.err
	}
	return &feedbackv1.GetQuestionnaireResponse{Questionnaire: &feedbackv1.Questionnaire{Id: req.GetId()}}, nil
}

func TestOfPolicy(t *testing.T) {
	ctx := context.Background()
	c := &client{}
	f := &questionnaires.Feedback{Client: c, Links: map[string]string{"p-1": "q-1"}}
	q, err := f.OfPolicy(ctx, "acme", "p-1")
	require.NoError(t, err)
	require.Equal(t, "q-1", q.GetId())
	require.Equal(t, "acme", c.asks[0].GetTenantId())

	_, err = f.OfPolicy(ctx, "acme", "p-2")
	require.ErrorIs(t, err, questionnaires.ErrNone, "no link")
	require.Len(t, c.asks, 1, "feedback is not asked")

	c.err = status.Error(codes.NotFound, "gone")
	_, err = f.OfPolicy(ctx, "acme", "p-1")
	require.ErrorIs(t, err, questionnaires.ErrNone)
	c.err = status.Error(codes.PermissionDenied, "no")
	_, err = f.OfPolicy(ctx, "acme", "p-1")
	require.ErrorIs(t, err, questionnaires.ErrUnavailable)
}

func TestParseLinks(t *testing.T) {
	links, err := questionnaires.ParseLinks(" a=q-1, b = q-2 ,")
	require.NoError(t, err)
	require.Equal(t, map[string]string{"a": "q-1", "b": "q-2"}, links)
	_, err = questionnaires.ParseLinks("a")
	require.Error(t, err)
}
