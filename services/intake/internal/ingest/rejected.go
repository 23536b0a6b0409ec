package ingest

import (
	"errors"
	"fmt"
	"time"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
)

// ErrAlreadyReplayed says a refused input was already replayed and stored:
// it is replayed once.
var ErrAlreadyReplayed = errors.New("already replayed")

// Rejected is an input intake refused (a row of rejected_events), its
// payload decrypted.
type Rejected struct {
	ID, Tenant, Source, Field, Reason, ContentType string
	Payload                                        []byte
	ReceivedAt                                     time.Time
	ReplayedAt                                     *time.Time
	ReplayedServiceID                              string
	// OpenErr is set (and Payload empty) when the stored payload does not
	// open, e.g. its key was taken out of ENCRYPTION_KEYS: the row is still
	// listed, but cannot be replayed as it is.
	OpenErr error
}

// Replay returns the event a replay of r ingests: fixed when given, else the
// payload as it is, decoded. A refused input is replayed once: after a
// replay stored it, ErrAlreadyReplayed.
func (r *Rejected) Replay(fixed *eventsv1.ServiceCompleted) (*eventsv1.ServiceCompleted, error) {
	if r.ReplayedAt != nil {
		return nil, fmt.Errorf("rejected event %s was already replayed as service %s: %w", r.ID, r.ReplayedServiceID, ErrAlreadyReplayed)
	}
	if fixed != nil {
		return fixed, nil
	}
	if r.OpenErr != nil {
		return nil, r.OpenErr
	}
	return Decode(r.ContentType, r.Payload)
}

// Replayed records that a replay stored r as serviceID at at.
func (r *Rejected) Replayed(serviceID string, at time.Time) {
	r.ReplayedAt, r.ReplayedServiceID = &at, serviceID
}

// ServiceType is a service type events may name: a built-in one
// (ServiceTypes) or one a tenant registered beside them.
type ServiceType struct {
	Name, Description string
	BuiltIn           bool
}
