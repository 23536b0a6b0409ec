package access

import (
	privacyv1 "github.com/huifang/huifang/proto/huifang/privacy/v1"

	"github.com/huifang/huifang/pkg/auth"
)

// CustomerData is the permission table of the customer-data API, which
// every service serves over its own schema (For merges it into each
// service's table). A tenant admin exports one service's part; the service
// intake gathers every part for IntakeService.ExportCustomerData.
func CustomerData() auth.Table {
	return auth.Table{
		privacyv1.CustomerDataService_ExportCustomerData_FullMethodName: {Permission: "customers.export", Roles: roles(admin, svc),
			Scope: "with a reason; audited in the service that answers; of the services, only intake (gathering an export, on behalf of the admin)"},
	}
}
