package grpcapi_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/stream"
)

// Seed 000, auto dealer (售后电话回访/短信提醒制度): for no-shows record the
// reason. The agent who calls a customer invited to the first maintenance
// who did not come logs the visit with the reason (a bounded list) and a
// note; the record keeps both, VisitLogged carries the reason only, and the
// no-shows can be listed, all or by reason.
func TestNoShowIsRecordedWithItsReason(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, id := range []string{"v-1", "v-2", "v-3", "v-bad"} {
		e.seedVisit(t, id)
	}

	// A no-show call asks no questionnaire: no answers are needed.
	elsewhere := &feedbackv1.LogVisitRequest{VisitId: "v-1", AgentId: "a-1",
		NoShow: &feedbackv1.NoShow{Reason: typesv1.NoShowReason_NO_SHOW_REASON_SERVICED_ELSEWHERE}}
	r1, err := e.client.LogVisit(e.ctx, elsewhere)
	require.NoError(t, err)
	require.True(t, proto.Equal(elsewhere.NoShow, r1.Record.NoShow), "%v", r1.Record.NoShow)
	require.Empty(t, r1.Record.ComplaintIds, "a no-show is not a complaint")
	logged := &eventsv1.VisitLogged{}
	e.last(t, stream.SubjectVisitLogged, logged)
	require.Equal(t, typesv1.NoShowReason_NO_SHOW_REASON_SERVICED_ELSEWHERE, logged.NoShowReason)

	const note = "visiting his daughter in Chengdu until May"
	other := logRequest("v-2", typesv1.Rating_RATING_SATISFIED)
	other.NoShow = &feedbackv1.NoShow{Reason: typesv1.NoShowReason_NO_SHOW_REASON_OTHER, Note: note}
	r2, err := e.client.LogVisit(e.ctx, other)
	require.NoError(t, err)
	require.Equal(t, note, r2.Record.NoShow.GetNote())
	for _, row := range e.outbox(t) {
		require.False(t, bytes.Contains(row.Payload, []byte("Chengdu")), "the note stays in feedback: no free text in events")
	}
	_, err = e.client.LogVisit(e.ctx, logRequest("v-3", typesv1.Rating_RATING_SATISFIED))
	require.NoError(t, err)

	for _, tt := range []struct {
		name   string
		noShow *feedbackv1.NoShow
		want   []string
	}{
		{"no reason", &feedbackv1.NoShow{Note: "?"}, []string{"no_show.reason"}},
		{"unknown reason", &feedbackv1.NoShow{Reason: 99}, []string{"no_show.reason"}},
		{"other without a note", &feedbackv1.NoShow{Reason: typesv1.NoShowReason_NO_SHOW_REASON_OTHER}, []string{"no_show.note"}},
		{"no answers and no no-show", nil, []string{"answers"}},
	} {
		req := &feedbackv1.LogVisitRequest{VisitId: "v-bad", AgentId: "a-1", NoShow: tt.noShow}
		_, err := e.client.LogVisit(e.ctx, req)
		require.Equal(t, tt.want, violations(t, err), tt.name)
	}

	list := func(req *feedbackv1.ListVisitRecordsRequest) []string {
		t.Helper()
		resp, err := e.client.ListVisitRecords(e.ctx, req)
		require.NoError(t, err)
		var ids []string
		for _, r := range resp.Records {
			ids = append(ids, r.VisitId)
		}
		return ids
	}
	require.ElementsMatch(t, []string{"v-1", "v-2", "v-3"}, list(&feedbackv1.ListVisitRecordsRequest{}))
	require.ElementsMatch(t, []string{"v-1", "v-2"}, list(&feedbackv1.ListVisitRecordsRequest{NoShowOnly: true}))
	require.Equal(t, []string{"v-1"}, list(&feedbackv1.ListVisitRecordsRequest{NoShowReason: typesv1.NoShowReason_NO_SHOW_REASON_SERVICED_ELSEWHERE}))
	_, err = e.client.ListVisitRecords(e.ctx, &feedbackv1.ListVisitRecordsRequest{NoShowReason: 99})
	require.Equal(t, []string{"no_show_reason"}, violations(t, err))
}
