package change_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/services/scheduler/internal/change"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func proposal(state string) change.Proposal {
	p := change.Proposal{ID: "ch-1", State: state, ProposedBy: change.Person{Subject: "admin-1"}, ProposedAt: t0}
	if state != change.Proposed {
		p.DecidedBy, p.DecidedAt = change.Person{Subject: "d-1"}, t0.Add(time.Hour)
	}
	return p
}

// Seed 004 (三、(一)3: 隨訪計劃經隨訪中心主任審核後報上級領導批準實施) and
// seed 000 (第八条: 回访计划…经公司领导审批后执行): a plan runs once someone
// other than its author approved it; a decision is taken once.
func TestDecide(t *testing.T) {
	director := change.Person{Subject: "d-1", Roles: []string{"director"}}
	for _, tc := range []struct {
		name    string
		state   string
		d       change.Decision
		want    string
		changed bool
		err     error
	}{
		{"a director approves", change.Proposed, change.Decision{Approve: true, By: director, At: t0}, change.Approved, true, nil},
		{"a director rejects", change.Proposed, change.Decision{By: director, At: t0, Note: "too many calls"}, change.Rejected, true, nil},
		{"the proposer does not approve", change.Proposed, change.Decision{Approve: true, By: change.Person{Subject: "admin-1"}}, change.Proposed, false, change.ErrOwnProposal},
		{"the proposer may withdraw", change.Proposed, change.Decision{By: change.Person{Subject: "admin-1"}, Note: "wrong pack"}, change.Rejected, true, nil},
		{"an approval retried changes nothing", change.Approved, change.Decision{Approve: true, By: director}, change.Approved, false, nil},
		{"a rejection retried changes nothing", change.Rejected, change.Decision{By: director, Note: "x"}, change.Rejected, false, nil},
		{"an approved change is not rejected", change.Approved, change.Decision{By: director, Note: "x"}, change.Approved, false, change.ErrDecided},
		{"a rejected change is not approved", change.Rejected, change.Decision{Approve: true, By: director}, change.Rejected, false, change.ErrDecided},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, changed, err := proposal(tc.state).Decide(tc.d)
			require.ErrorIs(t, err, tc.err)
			require.Equal(t, tc.changed, changed)
			require.Equal(t, tc.want, got.State)
			if changed {
				require.Equal(t, tc.d.By, got.DecidedBy)
				require.Equal(t, tc.d.Note, got.Note)
			}
		})
	}
}

// A change proposed against a version that has changed since is refused,
// naming the policy and both versions; a new policy's name taken since too.
func TestStale(t *testing.T) {
	p := proposal(change.Proposed)
	p.BasedOn = []change.Version{{PolicyID: "p-1", Name: "repairs", Version: 2}, {Name: "holiday-visits"}}
	require.NoError(t, p.Stale(map[string]int{"p-1": 2}))

	err := p.Stale(map[string]int{"p-1": 3})
	require.ErrorIs(t, err, change.ErrStale)
	require.Contains(t, err.Error(), "policy repairs (p-1) was at version 2 when proposed and is at version 3 now")

	err = p.Stale(map[string]int{"p-1": 2, "name:holiday-visits": 1})
	require.ErrorIs(t, err, change.ErrStale)
	require.Contains(t, err.Error(), "policy holiday-visits was created since (version 1)")
}
