package access

import (
	"github.com/huifang/huifang/pkg/auth"
	analyticsv1 "github.com/huifang/huifang/proto/huifang/analytics/v1"
)

// Analytics is the analytics service's permission table.
func Analytics() auth.Table {
	units := "a leader names one of the org units its token names (filter.org_unit)"
	figures := func(extra ...auth.Role) auth.Rule {
		return auth.Rule{Permission: "figures.read", Roles: append(roles(leader, director, admin), extra...), Scope: units}
	}
	return auth.Table{
		analyticsv1.AnalyticsService_GetSatisfaction_FullMethodName:     figures(),
		analyticsv1.AnalyticsService_GetCoverage_FullMethodName:         figures(),
		analyticsv1.AnalyticsService_GetTimeliness_FullMethodName:       figures(),
		analyticsv1.AnalyticsService_GetAgentScorecards_FullMethodName:  figures(),
		analyticsv1.AnalyticsService_GetTrend_FullMethodName:            figures(),
		analyticsv1.AnalyticsService_GetProblemBreakdown_FullMethodName: figures(owner),
		analyticsv1.AnalyticsService_GenerateReport_FullMethodName:      {Permission: "reports.generate", Roles: roles(leader, director, admin), Scope: units},
		analyticsv1.AnalyticsService_GenerateRoundReport_FullMethodName: {Permission: "reports.round", Roles: roles(leader, director, owner),
			Scope: "a leader names one of the org units its token names (org_unit); a department owner reads it for the department general_manager only (seed 000 cement: the report goes to the general manager)"},
		analyticsv1.AnalyticsService_ListTargets_FullMethodName:      {Permission: "targets.read", Roles: roles(leader, director, admin)},
		analyticsv1.AnalyticsService_ListBreaches_FullMethodName:     {Permission: "targets.read", Roles: roles(leader, director, admin)},
		analyticsv1.AnalyticsService_SetTarget_FullMethodName:        {Permission: "targets.write", Roles: roles(admin)},
		analyticsv1.AnalyticsService_CheckTargets_FullMethodName:     {Permission: "targets.check", Roles: roles(director, admin)},
		analyticsv1.AnalyticsService_SetIncentiveRule_FullMethodName: {Permission: "incentives.write", Roles: roles(admin)},
		analyticsv1.AnalyticsService_Rebuild_FullMethodName:          {Permission: "maintenance.rebuild", Roles: roles(operator)},
	}
}
