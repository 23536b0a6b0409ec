package web

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

func TestPolicyDurations(t *testing.T) {
	for _, c := range []struct {
		in   time.Duration
		text string
	}{{0, "0s"}, {48 * time.Hour, "2d"}, {14 * 24 * time.Hour, "2w"}, {36 * time.Hour, "36h"}, {90 * time.Minute, "90m"}, {-24 * time.Hour, "-1d"}, {90 * time.Second, "1m30s"}} {
		require.Equal(t, c.text, policyDuration(durationpb.New(c.in)))
		d, err := policyParseDuration(c.text)
		require.NoError(t, err, c.text)
		require.Equal(t, c.in, d.AsDuration(), c.text)
	}
	d, err := policyParseDuration(" ")
	require.NoError(t, err)
	require.Nil(t, d, "empty is none")
	for _, bad := range []string{"3 days", "d", "1.5d", "soon"} {
		_, err := policyParseDuration(bad)
		require.Error(t, err, bad)
	}
}

// TestPolicyDraftKeepsWhatTheFormDoesNotShow: the form's fields replace
// the stored version's, the rest (an anchor, a recurrence, the stop) stay;
// a value the console cannot read is a field violation named as the
// scheduler names it.
func TestPolicyDraftKeepsWhatTheFormDoesNotShow(t *testing.T) {
	half := 0.5
	stored := &schedulerv1.Policy{Id: "p-1", Name: "care", Version: 3,
		Trigger: &schedulerv1.Trigger{ServiceTypes: []string{"purchase"}, Attributes: map[string]string{"vip": "yes"}},
		Steps: []*schedulerv1.Step{{Offset: durationpb.New(24 * time.Hour), Channel: typesv1.Channel_CHANNEL_PHONE, SampleRate: &half,
			Anchor: &schedulerv1.Anchor{From: "warranty_until"}, Every: durationpb.New(30 * 24 * time.Hour)}},
		Stop: &schedulerv1.Stop{Answered: true}}
	f := policyFormOf(stored)
	require.Equal(t, "1d", f.Steps[0].Offset)
	require.Equal(t, "0.5", f.Steps[0].SampleRate)
	require.Equal(t, "CHANNEL_PHONE", f.Steps[0].Channel)

	f.Name, f.ServiceTypes = "care v4", "purchase， repair"
	f.Steps[0].Offset, f.Steps[0].Window, f.Steps[0].Channel, f.Steps[0].SampleRate, f.Steps[0].Group = "3d", "1w", "CHANNEL_SMS", "", "crm"
	p, err := policyDraft(stored, f)
	require.NoError(t, err)
	require.Equal(t, "care v4", p.GetName())
	require.Equal(t, []string{"purchase", "repair"}, p.GetTrigger().GetServiceTypes())
	require.Equal(t, map[string]string{"vip": "yes"}, p.GetTrigger().GetAttributes(), "kept")
	st := p.GetSteps()[0]
	require.Equal(t, 72*time.Hour, st.GetOffset().AsDuration())
	require.Equal(t, 7*24*time.Hour, st.GetWindow().AsDuration())
	require.Equal(t, typesv1.Channel_CHANNEL_SMS, st.GetChannel())
	require.Nil(t, st.SampleRate, "empty: every service")
	require.Equal(t, "crm", st.GetGroup())
	require.Equal(t, "warranty_until", st.GetAnchor().GetFrom(), "kept")
	require.Equal(t, 30*24*time.Hour, st.GetEvery().AsDuration(), "kept")
	require.True(t, p.GetStop().GetAnswered(), "kept")
	require.Equal(t, "care", stored.GetName(), "the stored policy is not changed")
	require.Equal(t, 0.5, stored.GetSteps()[0].GetSampleRate())

	f.Steps[0].Offset, f.Steps[0].SampleRate, f.Steps[0].Channel = "soon", "half", "CHANNEL_PIGEON"
	_, err = policyDraft(stored, f)
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	var fields []string
	for _, d := range status.Convert(err).Details() {
		for _, v := range d.(*errdetails.BadRequest).GetFieldViolations() {
			fields = append(fields, v.GetField())
		}
	}
	require.Equal(t, []string{"policy.steps[0].offset", "policy.steps[0].channel", "policy.steps[0].sample_rate"}, fields)
}

// TestPolicyLoad: a synthetic load of the policy's service types, or the
// tenant's services of the last days (whole UTC days up to today's end).
func TestPolicyLoad(t *testing.T) {
	p := &schedulerv1.Policy{Trigger: &schedulerv1.Trigger{ServiceTypes: []string{"repair"}, OrgUnits: []string{"north"}}}
	run, err := policyLoad(policyForm{Load: "synthetic", PerDay: "20", Days: "14"}, p, time.Now())
	require.NoError(t, err)
	require.Nil(t, run.From)
	require.Nil(t, run.To)
	syn := run.Synthetic
	require.EqualValues(t, 20, syn.GetServicesPerDay())
	require.EqualValues(t, 14, syn.GetDays())
	require.Equal(t, []string{"repair"}, syn.GetServiceTypes())
	require.Equal(t, []string{"north"}, syn.GetOrgUnits())

	now := time.Date(2026, 5, 7, 15, 4, 0, 0, time.UTC)
	run, err = policyLoad(policyForm{Load: "history", Days: "30", PerDay: "nonsense: not asked"}, p, now)
	require.NoError(t, err)
	require.Nil(t, run.Synthetic)
	require.Equal(t, time.Date(2026, 5, 8, 0, 0, 0, 0, time.UTC), run.To.AsTime())
	require.Equal(t, time.Date(2026, 4, 8, 0, 0, 0, 0, time.UTC), run.From.AsTime())

	_, err = policyLoad(policyForm{Load: "synthetic", PerDay: "0", Days: "x"}, p, now)
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.Len(t, status.Convert(err).Details()[0].(*errdetails.BadRequest).GetFieldViolations(), 2)
}
