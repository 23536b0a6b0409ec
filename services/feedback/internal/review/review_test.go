package review_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
	full := func(scores ...int32) []review.ItemScore {
		var out []review.ItemScore
		for i, item := range review.Checklist {
			out = append(out, review.ItemScore{Item: item, Score: scores[i]})
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
	bad = append(bad[:3], review.ItemScore{Item: "smiled", Score: 1})
	_, err = review.Score(bad)
	e, ok := invalid.As(err)
	require.True(t, ok)
	var fields []string
	for _, v := range e.Violations {
		fields = append(fields, v.Field)
	}
	require.Equal(t, []string{"scores[0].score", "scores[3].item", "scores"}, fields)
}

func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	e, ok := invalid.As(err)
	require.True(t, ok, "want *invalid.Error, got %v", err)
	var fields []string
	for _, v := range e.Violations {
		fields = append(fields, v.Field)
	}
	return fields
}

func TestNewAndOf(t *testing.T) {
	at := time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
	var scores []review.ItemScore
	for _, item := range review.Checklist {
		scores = append(scores, review.ItemScore{Item: " " + item + " ", Score: 4})
	}
	r, err := review.New("rv-1", "default", " r-1 ", " qa-1 ", scores, " fine ", at)
	require.NoError(t, err)
	require.Equal(t, []string{"r-1", "qa-1", "fine", "identity_confirmed"}, []string{r.RecordID, r.ReviewerID, r.Comments, r.Scores[0].Item})
	require.EqualValues(t, 80, r.Score)
	require.Equal(t, []string{"reviewer_id"}, fieldsOf(t, r.Of("r-1", "qa-1")), "no one reviews their own record")
	require.NoError(t, r.Of("r-1", "a-1"))
	require.Equal(t, "a-1", r.AgentID)

	_, err = review.New("rv-2", "default", "", "", scores[:3], "", at)
	require.Equal(t, []string{"record_id", "reviewer_id", "scores"}, fieldsOf(t, err))
}

func TestSampleSize(t *testing.T) {
	start := time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
	n, err := review.SampleSize("a-1", start, start.AddDate(0, 0, 7), 0)
	require.NoError(t, err)
	require.Equal(t, review.DefaultSize, n, "3 a week by default (seed 000)")
	_, err = review.SampleSize("a-1", start, start, 3)
	require.Equal(t, []string{"period_end"}, fieldsOf(t, err))
	_, err = review.SampleSize(" ", time.Time{}, time.Time{}, 101)
	require.Equal(t, []string{"agent_id", "period_start", "period_end", "size"}, fieldsOf(t, err))
}
