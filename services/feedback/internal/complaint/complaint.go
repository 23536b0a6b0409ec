// Package complaint decides which complaints a follow-up record opens and
// which department owns each (seeds 000, 001, 002, 003). It does no I/O.
package complaint

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/services/feedback/internal/record"
)

// Categories with a rule of their own.
const (
	CategoryProductQuality = "product_quality"
	CategoryServiceQuality = "service_quality"
	// CategoryUnsatisfied is the complaint opened for an unsatisfied overall
	// rating that came with no problem (seed 000, auto dealer).
	CategoryUnsatisfied = "unsatisfied"
)

// Departments that own complaints.
const (
	DepartmentRnDProduction  = "rnd_production"
	DepartmentAfterSales     = "after_sales"
	DepartmentServiceManager = "service_manager"
)

// Severity and status of a new complaint.
const (
	SeverityGeneral = "general"
	StatusOpen      = "open"
)

// DefaultDeadline is how long the owning department has to answer: the
// 48 hours of seed 003's quality standard.
const DefaultDeadline = 48 * time.Hour

// Department returns the department that owns a problem of category:
// product quality goes to R&D and production, service quality to
// after-sales (seed 001; seed 002's cement plant splits the same way), and
// anything else to the service manager, who analyses the cause (seed 000).
func Department(category string) string {
	switch category {
	case CategoryProductQuality:
		return DepartmentRnDProduction
	case CategoryServiceQuality:
		return DepartmentAfterSales
	default:
		return DepartmentServiceManager
	}
}

// unsatisfiedDescription describes an unsatisfied rating that came without
// comments, so that no complaint is opened without a description.
const unsatisfiedDescription = "the customer rated the service unsatisfied and gave no reason"

// Open returns the complaints rec opens, without ids: one per problem, or,
// when the overall rating is unsatisfied and no problem was given, one of
// category "unsatisfied" described by the comments. Each is general, open,
// owned by the agent who took it (seed 002, first-contact ownership) and due
// within the given time after the record was logged.
func Open(rec *feedbackv1.VisitRecord, within time.Duration) []*feedbackv1.Complaint {
	type raised struct{ category, description string }
	var list []raised
	for _, p := range rec.Problems {
		list = append(list, raised{p.GetCategory(), p.GetDescription()})
	}
	if overall, comment := record.Overall(rec); overall == typesv1.Rating_RATING_UNSATISFIED && len(list) == 0 {
		desc := rec.Comments
		if desc == "" {
			desc = comment
		}
		if desc == "" {
			desc = unsatisfiedDescription
		}
		list = append(list, raised{CategoryUnsatisfied, desc})
	}
	logged := rec.LoggedAt.AsTime()
	out := make([]*feedbackv1.Complaint, 0, len(list))
	for _, r := range list {
		out = append(out, &feedbackv1.Complaint{
			TenantId:     rec.TenantId,
			VisitId:      rec.VisitId,
			CustomerId:   rec.CustomerId,
			Category:     r.category,
			Description:  r.description,
			Department:   Department(r.category),
			Severity:     SeverityGeneral,
			Status:       StatusOpen,
			Deadline:     timestamppb.New(logged.Add(within)),
			CreatedAt:    rec.LoggedAt,
			OwnerAgentId: rec.AgentId,
		})
	}
	return out
}

// Escalated returns the ComplaintEscalated event that hands c to its department.
func Escalated(eventID string, c *feedbackv1.Complaint, orgUnit string) *eventsv1.ComplaintEscalated {
	return &eventsv1.ComplaintEscalated{
		EventId:      eventID,
		TenantId:     c.TenantId,
		ComplaintId:  c.Id,
		VisitId:      c.VisitId,
		CustomerId:   c.CustomerId,
		Category:     c.Category,
		Description:  c.Description,
		Department:   c.Department,
		Severity:     c.Severity,
		Deadline:     c.Deadline,
		EscalatedAt:  c.CreatedAt,
		OrgUnit:      orgUnit,
		OwnerAgentId: c.OwnerAgentId,
	}
}
