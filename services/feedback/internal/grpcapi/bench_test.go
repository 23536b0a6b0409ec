package grpcapi_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/visit"
)

// BenchmarkLogVisit logs visits through gRPC against a seed questionnaire
// (seed 003, 14 rated aspects), half of them unsatisfied with a problem, so
// each call stores a record and one or two outbox events and, for half, a
// complaint with its history; one customer per visit, so the customer
// lock and the same-problem lookup never wait; 8 callers at once. Run with:
//
//	go test -run '^$' -bench BenchmarkLogVisit -benchtime 2000x ./internal/grpcapi/
func BenchmarkLogVisit(b *testing.B) {
	e := setup(b)
	_, err := e.client.SetPolicyQuestionnaire(e.ctx, &feedbackv1.SetPolicyQuestionnaireRequest{PolicyId: "policy-repair", QuestionnaireId: questionnaire.SeedProperty})
	require.NoError(b, err)
	var aspects []string
	for _, q := range questionnaire.Seeds() {
		if q.ID == questionnaire.SeedProperty {
			for _, qu := range q.Questions {
				aspects = append(aspects, qu.Aspect)
			}
		}
	}
	ids := make([]string, b.N)
	require.NoError(b, pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
		for i := range ids {
			ids[i] = fmt.Sprintf("bench-%d", i)
			v := visit.Visit{TenantID: "default", VisitID: ids[i], CustomerID: fmt.Sprintf("c-%d", i), PolicyID: "policy-repair", Channel: typesv1.Channel_CHANNEL_PHONE}
			if err := e.app.LearnVisitTx(e.ctx, tx, v); err != nil {
				return err
			}
		}
		return nil
	}))
	request := func(i int) *feedbackv1.LogVisitRequest {
		req := &feedbackv1.LogVisitRequest{VisitId: ids[i], AgentId: "a-1"}
		for _, a := range aspects {
			req.Answers = append(req.Answers, &typesv1.Answer{Aspect: a, Rating: typesv1.Rating_RATING_SATISFIED})
		}
		if i%2 == 1 {
			req.Answers[12].Rating = typesv1.Rating_RATING_UNSATISFIED
			req.Problems = []*typesv1.Problem{{Category: "parking", Description: "no visitor parking"}}
		}
		return req
	}
	var next atomic.Int64
	b.SetParallelism(4) // 8 concurrent callers on 2 cores
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.client.LogVisit(e.ctx, request(int(next.Add(1)-1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "visits/s")
}
