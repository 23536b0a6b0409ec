package web

import (
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
)

// TestPlanMeasures: the plan form's rows become measures, blank rows are
// skipped, a due date is the end of that day in the user's zone, and a
// date that does not parse is refused naming the field.
func TestPlanMeasures(t *testing.T) {
	sh, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	f := url.Values{
		"measure_text":  {"培训安装师傅", " ", "回访抽查"},
		"measure_owner": {"after_sales", "", ""},
		"measure_due":   {"2026-12-31", "", ""},
	}
	ms, err := planMeasures(f, sh)
	require.NoError(t, err)
	require.Len(t, ms, 2)
	require.Equal(t, "培训安装师傅", ms[0].GetText())
	require.Equal(t, "after_sales", ms[0].GetOwner())
	require.Equal(t, time.Date(2026, 12, 31, 23, 59, 59, 0, sh).UTC(), ms[0].GetDueAt().AsTime())
	require.Nil(t, ms[1].GetDueAt())

	_, err = planMeasures(url.Values{"measure_text": {"x"}, "measure_due": {"31/12/2026"}}, sh)
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	var fields []string
	for _, d := range status.Convert(err).Details() {
		for _, v := range d.(*errdetails.BadRequest).GetFieldViolations() {
			fields = append(fields, v.GetField())
		}
	}
	require.Equal(t, []string{"measures.due_at"}, fields)
}

// TestComplaintAges: a complaint is overdue only while its department has
// it (open or acknowledged) past its deadline; ages read in hours and
// minutes, never negative.
func TestComplaintAges(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	past := timestamppb.New(now.Add(-time.Minute))
	for st, want := range map[string]bool{"open": true, "acknowledged": true, "resolved": false, "closed": false} {
		require.Equal(t, want, overdue(&feedbackv1.Complaint{Status: st, Deadline: past}, now), st)
	}
	require.False(t, overdue(&feedbackv1.Complaint{Status: "open", Deadline: timestamppb.New(now.Add(time.Minute))}, now))
	require.False(t, overdue(&feedbackv1.Complaint{Status: "open"}, now), "no deadline")
	require.Equal(t, hm{Set: true, H: 26, M: 5}, hmOfDuration(26*time.Hour+5*time.Minute+30*time.Second))
	require.Equal(t, hm{Set: true}, hmOfDuration(-time.Hour))
	require.Equal(t, hm{}, hmOf(nil))
}
