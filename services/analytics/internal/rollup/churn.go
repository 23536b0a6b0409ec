package rollup

import (
	"strings"
	"time"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/tenant"
)

// Seed 000 (auto dealer): the churned-customer analysis table.
const (
	// ChurnGroup is the group of the visits that are churn cases: the auto
	// pack's auto-churn call ("each quarter, list vehicles with no
	// maintenance or repair visit for 6+ months, assign them to agents").
	ChurnGroup = "churn_recovery"
	// AspectChurnReason and AspectChurnRemedy are the aspects of the
	// answers that record why the customer stayed away and what the agent
	// does to win them back (choice answers; free text stays in feedback).
	AspectChurnReason = "churn_reason"
	AspectChurnRemedy = "churn_remedy"
)

// ChurnCase is one row of the churned-customer analysis table.
type ChurnCase struct {
	Tenant, VisitID, ServiceID, CustomerID string
	// NameMasked is the customer's masked name (王*), as events carry it.
	NameMasked string
	OrgUnit    string
	DueAt      time.Time
	// LastVisitAt is when the service the churn call follows was completed:
	// the customer's last delivery, maintenance or repair.
	LastVisitAt time.Time
	// Model, PlateMasked and Advisor are the car and the staff of that service.
	Model, PlateMasked, Advisor string
	// Filled in when the agent logs the call.
	AgentID, RecordID string
	LoggedAt          time.Time
	Reason, Remedy    string
}

// ChurnCaseOf is the churn case a VisitDue opens, false when the visit is
// not a churn call.
func ChurnCaseOf(ev *eventsv1.VisitDue) (ChurnCase, bool) {
	if ev.GetGroup() != ChurnGroup || ev.GetVisitId() == "" {
		return ChurnCase{}, false
	}
	return ChurnCase{
		Tenant: tenant.Of(ev), VisitID: ev.GetVisitId(), ServiceID: ev.GetServiceId(), CustomerID: ev.GetCustomer().GetId(),
		NameMasked: ev.GetCustomer().GetNameMasked(), OrgUnit: ev.GetOrgUnit(), DueAt: ts(ev.GetDueAt()),
		LastVisitAt: ts(ev.GetServiceCompletedAt()),
	}, true
}

// ChurnAnswers reads the reason and the remedy a record of a churn call
// gives: the choices of its answers of aspects churn_reason and
// churn_remedy (choice questions: events carry no free text, which stays
// in feedback's record).
func ChurnAnswers(answers []*typesv1.Answer) (reason, remedy string) {
	for _, a := range answers {
		switch a.GetAspect() {
		case AspectChurnReason:
			reason = a.GetChoice()
		case AspectChurnRemedy:
			remedy = a.GetChoice()
		}
	}
	return reason, remedy
}

// MaskPlate masks a licence plate as the other personal data: the
// province and the letter of the issuing office and the last two
// characters stay (沪A12345 → 沪A***45); a short one keeps its first
// character only.
func MaskPlate(plate string) string {
	plate = strings.TrimSpace(plate)
	rs := []rune(plate)
	switch {
	case len(rs) == 0:
		return ""
	case len(rs) < 6:
		return string(rs[0]) + "***"
	}
	return string(rs[:2]) + "***" + string(rs[len(rs)-2:])
}
