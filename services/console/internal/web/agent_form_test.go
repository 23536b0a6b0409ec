package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

func TestSearchRequestGuessesTheCriterion(t *testing.T) {
	require.Equal(t, "138 0013-8000", searchRequest(" 138 0013-8000 ", "auto").GetPhone())
	require.Equal(t, "王", searchRequest("王", "auto").GetName())
	require.Equal(t, "LSVAU2180N2183294", searchRequest("LSVAU2180N2183294", "auto").GetVin())
	require.Equal(t, "沪A12345", searchRequest("沪A12345", "plate").GetPlate())
	require.Equal(t, "c-1", searchRequest("c-1", "external_id").GetExternalId())
	require.Equal(t, "Wang Fang", searchRequest("Wang Fang", "auto").GetName())
}

func visitForm(t *testing.T, f url.Values) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, "/agent/task/t-1/visit", strings.NewReader(f.Encode()))
	require.NoError(t, err)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	require.NoError(t, r.ParseForm())
	return r
}

// TestVisitRequestReadsTheForm: an answer per aspect from the fields named
// by kind and aspect, a problem and a promised reply in the user's zone;
// unknown ratings and bad numbers are refused field by field.
func TestVisitRequestReadsTheForm(t *testing.T) {
	s := &Server{}
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	u := &User{Loc: shanghai}
	req, err := s.visitRequest(visitForm(t, url.Values{"visit_id": {"v-1"}, "rating.overall": {"RATING_FAIRLY_SATISFIED"},
		"rating.product_quality": {"RATING_UNSATISFIED"}, "rating.efficiency": {""}, "score.recommend": {"9"}, "yes.on_time": {"no"},
		"text.suggestions": {"faster"}, "problem.category": {"product_quality"}, "problem.description": {"leaks"},
		"problem.severity": {"SEVERITY_URGENT"}, "promise.question": {"refund?"}, "promise.at": {"2026-12-08T10:00"}}), u)
	require.NoError(t, err)
	require.Equal(t, "v-1", req.GetVisitId())
	got := map[string]*typesv1.Answer{}
	for _, a := range req.GetAnswers() {
		got[a.GetAspect()] = a
	}
	require.Len(t, got, 5, "an empty field is no answer")
	require.Equal(t, typesv1.Rating_RATING_UNSATISFIED, got["product_quality"].GetRating())
	require.Equal(t, typesv1.Rating_RATING_FAIRLY_SATISFIED, got["overall"].GetRating())
	require.Equal(t, int32(9), got["recommend"].GetScore())
	require.False(t, got["on_time"].GetYes())
	require.NotNil(t, got["on_time"].Yes)
	require.Equal(t, "faster", got["suggestions"].GetText())
	require.Equal(t, typesv1.Severity_SEVERITY_URGENT, req.GetProblems()[0].GetSeverity())
	require.Equal(t, time.Date(2026, 12, 8, 2, 0, 0, 0, time.UTC), req.GetPromisedReplies()[0].GetPromisedAt().AsTime())

	_, err = s.visitRequest(visitForm(t, url.Values{"rating.overall": {"RATING_GREAT"}, "score.recommend": {"ten"}}), u)
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	p := problemOf(err)
	require.Len(t, p.Fields, 2)
	require.Equal(t, "rating.overall", p.Fields[0].Field)
	require.Equal(t, "score.recommend", p.Fields[1].Field)
}
