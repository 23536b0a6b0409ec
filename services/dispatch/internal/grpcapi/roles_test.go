package grpcapi

import (
	"testing"

	"github.com/stretchr/testify/require"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"

	"github.com/huifang/huifang/services/dispatch/internal/task"
)

// TestRoles: every Role of the API is a role of the center, and back.
func TestRoles(t *testing.T) {
	for role, want := range map[dispatchv1.Role]string{
		dispatchv1.Role_ROLE_AGENT: task.RoleAgent, dispatchv1.Role_ROLE_LEADER: task.RoleLeader, dispatchv1.Role_ROLE_DEPUTY: task.RoleDeputy,
		dispatchv1.Role_ROLE_DIRECTOR: task.RoleDirector, dispatchv1.Role_ROLE_DEPARTMENT_OWNER: task.RoleDepartmentOwner,
	} {
		a, err := agentFromProto(&dispatchv1.Agent{Role: role})
		require.NoError(t, err)
		require.Equal(t, want, a.Role)
		require.Equal(t, role, roleProto(want))
	}
	require.Equal(t, dispatchv1.Role_ROLE_UNSPECIFIED, roleProto(""))
	_, err := agentFromProto(&dispatchv1.Agent{Role: 42})
	require.Error(t, err)
}
