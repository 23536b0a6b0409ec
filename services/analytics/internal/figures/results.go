package figures

import (
	"time"

	"github.com/huifang/huifang/services/analytics/internal/satisfaction"
)

// AspectVotes are one aspect's votes and its satisfaction rate.
type AspectVotes struct {
	Aspect string
	satisfaction.Votes
	// Rate is seed 003's: over the questionnaires returned.
	Rate Ratio
	// Rated is the second figure: over the questionnaires that rated the aspect.
	RatedRate Ratio
}

// ProblemCount is how often a problem category was raised about a product.
type ProblemCount struct {
	Category, ProductCategory string
	Count                     int64
}

// Scorecard is one agent's figures in a period (seed 004: agent scorecards).
type Scorecard struct {
	AgentID        string
	Due, Done      int64
	Timeliness     Ratio
	ContactSuccess Ratio
	// Satisfaction is the overall satisfaction of the visits the agent logged.
	Satisfaction Ratio
	Reviews      int64
	// ReviewScore is the mean QA score, 0–100.
	ReviewScore  float64
	IncentiveFen int64
}

// Scorecards are the agents' scorecards and the incentive ledger of a period.
type Scorecards struct {
	Cards  []Scorecard
	Ledger []Line
	Rule   IncentiveRule
}

// Breach is a figure found below its target: once per tenant, figure, org
// unit ("" for the whole tenant) and period.
type Breach struct {
	ID                     string
	Tenant                 string
	Figure                 string
	OrgUnit                string
	PeriodStart, PeriodEnd time.Time
	Value, Target          float64
	DetectedAt             time.Time
}

// NewBreach is the breach of r (which fell short over [from, to)) found at `at`.
func NewBreach(id, tenant, orgUnit string, from, to time.Time, r Ratio, at time.Time) Breach {
	return Breach{ID: id, Tenant: tenant, Figure: r.Figure, OrgUnit: orgUnit,
		PeriodStart: from, PeriodEnd: to, Value: r.Value(), Target: r.Target(), DetectedAt: at.UTC()}
}
