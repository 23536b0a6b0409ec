package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/scripts/internal/stack"
)

func TestDemoEventsAreValidIngress(t *testing.T) {
	now := time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)
	types := map[string]int{}
	ids := map[string]bool{}
	for _, raw := range demoEvents(now) {
		ev := &eventsv1.ServiceCompleted{}
		require.NoError(t, protojson.Unmarshal([]byte(raw), ev), raw)
		require.Equal(t, "erp-demo", ev.GetSourceSystem())
		require.False(t, ids[ev.GetSourceEventId()], "source_event_id %s used twice", ev.GetSourceEventId())
		ids[ev.GetSourceEventId()] = true
		require.Contains(t, ev.GetSourceEventId(), "1795852800", "unique per run")
		require.NotEmpty(t, ev.GetCustomer().GetExternalId())
		require.Regexp(t, `^\+86\d{11}$`, ev.GetCustomer().GetPhone())
		require.False(t, ev.GetCompletedAt().AsTime().After(now), "completed_at not in the future")
		types[ev.GetServiceType()]++
	}
	require.Equal(t, map[string]int{"purchase": 1, "installation": 1, "repair": 2, "complaint_closed": 1, "discharge": 1}, types)
}

func TestInstantPolicyIsTheContract(t *testing.T) {
	req := &schedulerv1.CreatePolicyRequest{}
	require.NoError(t, protojson.Unmarshal([]byte(stack.InstantPolicy), req))
	p := req.GetPolicy()
	require.Equal(t, "instant", p.GetName())
	require.Equal(t, []string{"repair"}, p.GetTrigger().GetServiceTypes())
	require.Len(t, p.GetSteps(), 1)
	require.Zero(t, p.GetSteps()[0].GetOffset().AsDuration())
	require.Equal(t, typesv1.Channel_CHANNEL_PHONE, p.GetSteps()[0].GetChannel())
}

// The console's session key is made once and kept, so that a restart of
// make run keeps everybody signed in; a damaged file is refused, not
// silently replaced.
func TestSessionKeyIsKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console", "session.key")
	first, err := sessionKey(path)
	require.NoError(t, err)
	require.Len(t, first, 64, "32 bytes, hex")
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "only the owner reads it")
	again, err := sessionKey(path)
	require.NoError(t, err)
	require.Equal(t, first, again)

	require.NoError(t, os.WriteFile(path, []byte("short\n"), 0o600))
	_, err = sessionKey(path)
	require.ErrorContains(t, err, "not 32 bytes")
}
