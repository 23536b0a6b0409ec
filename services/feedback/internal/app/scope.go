package app

import (
	"context"
	"fmt"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/services/feedback/internal/complaint"
	"github.com/huifang/huifang/services/feedback/internal/record"
)

// The scope checks of feedback's callers (docs/security.md): the permission
// table lets a role call an RPC; these hold the call to what the caller may
// see. Calls without a principal (consumers, loops) are not held.

// recordInScope: an agent (who is neither leader, director nor QA reviewer)
// sees and amends only the records it logged.
func recordInScope(ctx context.Context, rec record.Record) error {
	p, ok := auth.Restricted(ctx, auth.Leader, auth.Director, auth.QAReviewer)
	if ok && rec.AgentID != p.AgentID {
		return auth.Deny("record_id", "an agent reaches only the records it logged")
	}
	return nil
}

// complaintInScope: a department owner (who is neither leader nor
// director) acts only on the complaints routed to its departments; wide
// are further roles that see every complaint for this call.
func complaintInScope(ctx context.Context, c complaint.Complaint, wide ...auth.Role) error {
	p, ok := auth.Restricted(ctx, append(wide, auth.Leader, auth.Director)...)
	if ok && !p.InDepartments(c.Department) {
		return auth.Deny("complaint_id", fmt.Sprintf("the complaint is routed to department %q, not to one of the caller's", c.Department))
	}
	return nil
}

// complaintQueue: a department owner lists its own departments' queue: a
// blank department is its only one, another is refused.
func complaintQueue(ctx context.Context, department string) (string, error) {
	p, ok := auth.Restricted(ctx, auth.Leader, auth.Director)
	switch {
	case !ok:
		return department, nil
	case department == "" && len(p.Departments) == 1:
		return p.Departments[0], nil
	case department == "":
		return "", auth.Deny("department", "a department owner names one of its departments")
	case !p.InDepartments(department):
		return "", auth.Deny("department", "not one of the caller's departments")
	}
	return department, nil
}
