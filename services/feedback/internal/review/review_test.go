package review_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/feedback/internal/review"
)

func TestSampleIsReproducible(t *testing.T) {
	var ids []string
	for i := range 20 {
		ids = append(ids, fmt.Sprintf("r-%02d", i))
	}
	week := time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
	key := review.Key("default", "a-1", week, week.AddDate(0, 0, 7))
	first := review.Sample(key, ids, 3)
	require.Len(t, first, 3, "seed 000: at least 3 spot checks a week")
	reversed := make([]string, len(ids))
	for i, id := range ids {
		reversed[len(ids)-1-i] = id
	}
	require.Equal(t, first, review.Sample(key, reversed, 3), "the same draw whatever order the records come in")
	require.NotEqual(t, first, review.Sample(review.Key("default", "a-1", week.AddDate(0, 0, 7), week.AddDate(0, 0, 14)), ids, 3),
		"another period draws another sample")
	require.Equal(t, first[:2], review.Sample(key, ids, 2), "a smaller sample is a prefix")
	require.Len(t, review.Sample(key, ids[:2], 3), 2, "no more than the population")
	require.Empty(t, review.Sample(key, nil, 3))
}

func TestScore(t *testing.T) {
	full := func(scores ...int32) []*feedbackv1.ChecklistScore {
		var out []*feedbackv1.ChecklistScore
		for i, item := range review.Checklist {
			out = append(out, &feedbackv1.ChecklistScore{Item: item, Score: scores[i]})
		}
		return out
	}
	got, err := review.Score(full(5, 5, 5, 5))
	require.NoError(t, err)
	require.EqualValues(t, 100, got)
	got, err = review.Score(full(5, 4, 3, 0))
	require.NoError(t, err)
	require.EqualValues(t, 60, got) // 12 of 20
	got, err = review.Score(full(1, 0, 0, 0))
	require.NoError(t, err)
	require.EqualValues(t, 5, got)

	bad := full(6, 5, 5, 5)
	bad = append(bad[:3], &feedbackv1.ChecklistScore{Item: "smiled", Score: 1})
	_, err = review.Score(bad)
	e, ok := invalid.As(err)
	require.True(t, ok)
	var fields []string
	for _, v := range e.Violations {
		fields = append(fields, v.Field)
	}
	require.Equal(t, []string{"scores[0].score", "scores[3].item", "scores"}, fields)
}
