package app

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/huifang/huifang/pkg/auth"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
	"github.com/huifang/huifang/services/feedback/internal/record"
)

// TestScopeOfRecordsAndComplaints: an agent reaches only the records it
// logged; a department owner only the complaints routed to its departments;
// leaders and directors every one of the tenant.
func TestScopeOfRecordsAndComplaints(t *testing.T) {
	t.Parallel()
	e := setup(t)
	id := e.unsatisfied(t, "v-1") // logged by a-1
	view, err := e.app.GetComplaint(e.ctx, "default", id)
	require.NoError(t, err)
	dept := view.Complaint.Department
	require.NotEmpty(t, dept)
	as := func(p auth.Principal) context.Context { return auth.With(e.ctx, p) }
	agent := func(id string) context.Context {
		return as(auth.Principal{Subject: id, Tenant: "default", Roles: []auth.Role{auth.Agent}, AgentID: id})
	}
	owner := func(depts ...string) context.Context {
		return as(auth.Principal{Subject: "o", Tenant: "default", Roles: []auth.Role{auth.DepartmentOwner}, Departments: depts})
	}

	own, err := e.app.GetRecord(agent("a-1"), "default", "v-1")
	require.NoError(t, err, "its own record")
	_, err = e.app.GetRecord(agent("a-2"), "default", "v-1")
	require.ErrorIs(t, err, auth.ErrPermissionDenied, "another agent's record")
	_, err = e.app.AmendRecord(agent("a-2"), amendOverall(own.Record.ID, "a-2"))
	require.ErrorIs(t, err, auth.ErrPermissionDenied, "amending another agent's record")
	leader := func(units ...string) context.Context {
		return as(auth.Principal{Subject: "l", Tenant: "default", Roles: []auth.Role{auth.Leader}, AgentID: "l-1", OrgUnits: units})
	}
	_, err = e.app.GetRecord(leader(), "default", "v-1")
	require.NoError(t, err, "a leader reads it")
	_, err = e.app.SignOffRecord(leader("branch-south"), SignOff{RecordID: own.Record.ID, LeaderID: "l-1", Approved: true})
	require.ErrorIs(t, err, auth.ErrPermissionDenied, "signing another unit's record")
	_, err = e.app.SignOffRecord(leader("branch-north"), SignOff{RecordID: own.Record.ID, LeaderID: "l-1", Approved: true})
	require.NoError(t, err, "its unit's record")

	_, err = e.app.GetComplaint(owner(dept), "default", id)
	require.NoError(t, err)
	_, err = e.app.GetComplaint(owner("elsewhere"), "default", id)
	require.ErrorIs(t, err, auth.ErrPermissionDenied)
	_, err = e.app.AcknowledgeComplaint(owner("elsewhere"), Acknowledge{ComplaintID: id, By: "o"})
	require.ErrorIs(t, err, auth.ErrPermissionDenied, "another department's complaint")
	_, err = e.app.AcknowledgeComplaint(owner(dept), Acknowledge{ComplaintID: id, By: "o"})
	require.NoError(t, err)

	list, err := e.app.ListComplaints(owner(dept), ComplaintList{Limit: 10})
	require.NoError(t, err, "its only department's queue")
	require.Len(t, list, 1)
	_, err = e.app.ListComplaints(owner(dept, "elsewhere"), ComplaintList{Limit: 10})
	require.ErrorIs(t, err, auth.ErrPermissionDenied, "two departments: name one")
	_, err = e.app.ListComplaints(owner(dept), ComplaintList{Department: "elsewhere", Limit: 10})
	require.ErrorIs(t, err, auth.ErrPermissionDenied)
}

func amendOverall(recordID, by string) record.AmendDraft {
	return record.AmendDraft{RecordID: recordID, By: by, Reason: "heard again",
		Correction: record.Correction{Answers: []questionnaire.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_FAIRLY_SATISFIED}}}}
}
