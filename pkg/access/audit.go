package access

import (
	"github.com/huifang/huifang/pkg/auth"
	auditv1 "github.com/huifang/huifang/proto/huifang/audit/v1"
)

// Audit is the permission table of the audit log, which every service
// serves over its own log (For merges it into each service's table). An
// auditor reads and checks their tenant's log; a platform operator checks
// any tenant's chain and reads the log of what was done for every tenant
// ("*"), which holds no tenant's data.
func Audit() auth.Table {
	return auth.Table{
		auditv1.AuditService_ListAuditEvents_FullMethodName: {Permission: "audit.read", Roles: roles(auditor, operator), AllTenants: true,
			Scope: "an auditor reads their tenant's log; a platform operator only the log of what was done for every tenant"},
		auditv1.AuditService_VerifyAuditLog_FullMethodName: {Permission: "audit.verify", Roles: roles(auditor, operator), AllTenants: true,
			Scope: "an auditor checks their tenant's chain; a platform operator any tenant's"},
	}
}
