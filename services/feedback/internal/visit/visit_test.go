package visit_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/feedback/internal/visit"
)

func TestTheNewestAssignmentWins(t *testing.T) {
	at := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	claim := visit.Assignment{VisitID: "v-1", AgentID: "a-1", AssignedAt: at}
	reassign := visit.Assignment{VisitID: "v-1", AgentID: "a-2", AssignedAt: at.Add(time.Hour)}

	require.True(t, claim.Replaces(nil), "the first assignment heard is kept, even before the visit's VisitDue")
	require.True(t, reassign.Replaces(&claim), "a leader's reassignment replaces the claim")
	require.False(t, claim.Replaces(&reassign), "the claim heard again late changes nothing")
	again := claim
	again.AgentID = "a-3"
	require.True(t, again.Replaces(&claim), "of two at the same time, the later heard wins")
}
