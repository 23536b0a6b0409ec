package rollup

import (
	"time"

	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

// Seed 000 (cement logistics): the rounds of delivery confirmations.
const (
	// RoundServiceType is the service type of the visits a round confirms:
	// the deliveries (delivery receipts).
	RoundServiceType = "delivery"
	// AspectProductMatches and AspectQuantityMatches are the yes/no answers
	// of the confirmation (questionnaire seed-000-cement-delivery).
	AspectProductMatches  = "product_matches"
	AspectQuantityMatches = "quantity_matches"
	// MismatchCategory is the category of the complaint a "no" opens,
	// routed to the general manager.
	MismatchCategory = "delivery_mismatch"
)

// Statuses of a round visit, in the order the report lists them.
const (
	RoundMismatch    = "mismatch"    // reached; product or quantity did not match
	RoundConfirmed   = "confirmed"   // reached; product and quantity confirmed
	RoundUnconfirmed = "unconfirmed" // reached; product or quantity not answered
	RoundUnreachable = "unreachable" // not reached: dispatch gave up
	RoundNotMade     = "not_made"    // not reached: no record yet
)

// RoundVisit is one delivery of a round: what analytics knows of its
// confirmation call.
type RoundVisit struct {
	Tenant, VisitID, PolicyID, OrgUnit string
	DueAt                              time.Time
	ServiceID, CustomerID              string
	// NameMasked is the customer's masked name (王*), as events carry it.
	NameMasked                        string
	AgentID                           string
	Attempted, Unreachable, Cancelled bool
	// LoggedAt and RecordID are the visit's first record (zero: none).
	LoggedAt time.Time
	RecordID string
	// ProductMatches and QuantityMatches are the record's answers, nil
	// when not answered.
	ProductMatches, QuantityMatches *bool
	// ComplaintID is the delivery_mismatch complaint of the visit and
	// ComplaintState its state when the report is read (open,
	// acknowledged, resolved, closed).
	ComplaintID, ComplaintState string
}

// RoundVisitOf is the round visit of a visit's ledger entry, false when
// the visit is not a delivery's that fell due (or was logged).
func RoundVisitOf(v Visit) (RoundVisit, bool) {
	if v.ServiceType != RoundServiceType || v.DueAt.IsZero() || !(v.Due || v.Logged()) {
		return RoundVisit{}, false
	}
	return RoundVisit{
		Tenant: v.Tenant, VisitID: v.VisitID, PolicyID: v.PolicyID, OrgUnit: v.OrgUnit, DueAt: v.DueAt,
		ServiceID: v.ServiceID, CustomerID: v.CustomerID, AgentID: v.AgentID,
		Attempted: v.Attempted, Unreachable: v.Unreachable, Cancelled: v.Cancelled, LoggedAt: v.LoggedAt,
	}, true
}

// MatchAnswers reads the confirmation's answers of a record: the yes/no
// of aspects product_matches and quantity_matches, nil when absent.
func MatchAnswers(answers []*typesv1.Answer) (product, quantity *bool) {
	for _, a := range answers {
		if a.Yes == nil {
			continue
		}
		yes := a.GetYes()
		switch a.GetAspect() {
		case AspectProductMatches:
			product = &yes
		case AspectQuantityMatches:
			quantity = &yes
		}
	}
	return product, quantity
}

// Reached reports whether the call was made: a record was logged.
func (r RoundVisit) Reached() bool { return !r.LoggedAt.IsZero() }

// Status is where the visit's confirmation stands (Round* constants): a
// record with a "no" or a delivery_mismatch complaint is a mismatch; with
// two "yes" a confirmation.
func (r RoundVisit) Status() string {
	no := func(b *bool) bool { return b != nil && !*b }
	yes := func(b *bool) bool { return b != nil && *b }
	switch {
	case r.Reached() && (no(r.ProductMatches) || no(r.QuantityMatches) || r.ComplaintID != ""):
		return RoundMismatch
	case r.Reached() && yes(r.ProductMatches) && yes(r.QuantityMatches):
		return RoundConfirmed
	case r.Reached():
		return RoundUnconfirmed
	case r.Unreachable:
		return RoundUnreachable
	}
	return RoundNotMade
}
