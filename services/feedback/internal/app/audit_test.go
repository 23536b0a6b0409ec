package app

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/audit"
	"github.com/huifang/huifang/pkg/audit/audittest"
	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/record"
)

// auditLog returns the tenant's audit entries, oldest first, after checking
// that their chain holds.
func (e *env) auditLog(t *testing.T, tenant string) []audit.Event {
	t.Helper()
	return audittest.Log(t, e.pool, tenant)
}

// Sign-offs and amendments of records write their audit entries in their
// own transactions, by the verified caller; a refused one writes none, and
// neither what the customer said nor the reason is kept in the log.
func TestSignOffsAndAmendmentsAreAudited(t *testing.T) {
	e := setup(t)
	e.seedVisit(t, "v-1")
	rec, err := e.app.LogVisit(e.ctx, draft("v-1", typesv1.Rating_RATING_SATISFIED))
	require.NoError(t, err)
	leader := auth.With(e.ctx, auth.Principal{Subject: "kc-lead", Tenant: "default", Roles: []auth.Role{auth.Leader}, AgentID: "lead-1", OrgUnits: []string{"branch-north"}})

	comments := "the customer said the parking was full"
	amend := record.AmendDraft{RecordID: rec.ID, By: "lead-1", Reason: "misheard the customer",
		Correction: record.Correction{Answers: []questionnaire.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_UNSATISFIED}}, Comments: &comments}}
	am, err := e.app.AmendRecord(leader, amend)
	require.NoError(t, err)
	_, err = e.app.AmendRecord(leader, record.AmendDraft{RecordID: rec.ID, By: "lead-1", Reason: "again", Correction: amend.Correction})
	require.Error(t, err, "a correction that changes nothing is refused")
	_, err = e.app.SignOffRecord(leader, SignOff{RecordID: "v-1", LeaderID: "lead-1", Approved: true})
	require.NoError(t, err)
	_, err = e.app.SignOffRecord(leader, SignOff{RecordID: "v-unknown", LeaderID: "lead-1", Approved: true})
	require.Error(t, err)
	_, err = e.app.SignOffRecord(context.Background(), SignOff{RecordID: rec.ID, LeaderID: "lead-1", Note: "recording missing"})
	require.NoError(t, err)

	es := e.auditLog(t, "default")
	var actions []string
	for _, ev := range es {
		actions = append(actions, ev.Action)
		require.False(t, strings.Contains(string(ev.Detail), "parking") || strings.Contains(string(ev.Detail), "misheard") ||
			strings.Contains(string(ev.Detail), "recording"), "no free text in the log: %s", ev.Detail)
	}
	require.Equal(t, []string{"record.amend", "record.sign_off", "record.sign_off"}, actions)
	require.Equal(t, audit.Actor{Subject: "kc-lead", Roles: []string{"leader"}}, es[0].Actor)
	require.Equal(t, audit.Target{Kind: "record", ID: rec.ID}, es[0].Target)
	require.JSONEq(t, `{"amendment_id":"`+am.Amendment.ID+`","visit_id":"v-1","by":"lead-1","fields":["answers[overall]","comments"]}`, string(es[0].Detail))
	require.JSONEq(t, `{"visit_id":"v-1","leader_id":"lead-1","approved":true}`, string(es[1].Detail))
	require.Equal(t, "system:feedback", es[2].Actor.Subject)

	// The Tx form joins the caller's transaction: rolled back with it.
	tx, err := e.pool.Begin(e.ctx)
	require.NoError(t, err)
	_, err = e.app.SignOffRecordTx(leader, tx, SignOff{RecordID: rec.ID, LeaderID: "lead-1", Approved: true})
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(e.ctx))
	require.Len(t, e.auditLog(t, "default"), len(es))
	view, err := e.app.GetRecord(e.ctx, "default", rec.ID)
	require.NoError(t, err)
	require.Len(t, view.SignOffs, 2, "the sign-off went with its entry")
}
