package stream

import "slices"

// Services are the NATS users of Huifang's services.
func Services() []string { return []string{"intake", "scheduler", "dispatch", "feedback", "analytics"} }

// Publishes returns the event subjects a service publishes, besides its
// dead-letter subject (DeadLetterSubject); nil for a name it does not know.
func Publishes(service string) []string {
	switch service {
	case "intake":
		return []string{SubjectServiceCompleted, SubjectCustomerUpdated, SubjectCustomerErased}
	case "scheduler":
		return []string{SubjectVisitPlanned, SubjectVisitDue, SubjectVisitCancelled}
	case "dispatch":
		return []string{SubjectVisitAssigned, SubjectVisitAttempted, SubjectVisitUnreachable, SubjectVisitOverdue, SubjectContactOptedOut,
			SubjectMessageSent, SubjectAppointmentChanged}
	case "feedback":
		return []string{SubjectVisitLogged, SubjectComplaintEscalated, SubjectComplaintAcknowledged, SubjectComplaintResolved,
			SubjectComplaintReopened, SubjectComplaintClosed, SubjectFollowUpRequested, SubjectReviewSubmitted,
			SubjectImprovementPlanSet, SubjectImprovementMeasureCompleted}
	case "analytics":
		return []string{SubjectTargetBreached}
	}
	return nil
}

// Permissions is what a NATS user may publish and subscribe to.
type Permissions struct {
	Publish, Subscribe []string
}

// jsClient is what every JetStream client needs besides its own subjects:
// the JetStream API (streams, consumers, pull requests), acknowledgements,
// and replies on its inboxes.
var jsClient = Permissions{Publish: []string{"$JS.API.>", "$JS.ACK.>"}, Subscribe: []string{"_INBOX.>"}}

// ServicePermissions are the NATS permissions of a service's user: its own
// event subjects and dead letters, and the JetStream API; it may publish no
// other service's events and nothing on the ingress subjects.
func ServicePermissions(service string) Permissions {
	pub := append(slices.Clone(Publishes(service)), DeadLetterSubject(service))
	return Permissions{Publish: append(pub, jsClient.Publish...), Subscribe: slices.Clone(jsClient.Subscribe)}
}

// IntegratorPermissions are an upstream system's: it publishes on the
// ingress subjects only (and reads the acknowledgements on its inboxes).
func IntegratorPermissions() Permissions {
	return Permissions{Publish: []string{IngressSubjects}, Subscribe: slices.Clone(jsClient.Subscribe)}
}
