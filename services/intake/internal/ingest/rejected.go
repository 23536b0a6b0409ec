package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/pkg/invalid"
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
//
// The replay keeps r's tenant: a blank tenant_id (of fixed, or of the
// payload) becomes r.Tenant, and another one is refused (fixed.tenant_id,
// payload.tenant_id), so that an input refused in one tenant can never be
// stored in another, whoever replays it.
func (r *Rejected) Replay(fixed *eventsv1.ServiceCompleted) (*eventsv1.ServiceCompleted, error) {
	if r.ReplayedAt != nil {
		return nil, fmt.Errorf("rejected event %s was already replayed as service %s: %w", r.ID, r.ReplayedServiceID, ErrAlreadyReplayed)
	}
	if fixed != nil {
		if err := r.keepTenant(fixed, "fixed.tenant_id", "or blank"); err != nil {
			return nil, err
		}
		return fixed, nil
	}
	if r.OpenErr != nil {
		return nil, r.OpenErr
	}
	ev, err := Decode(r.ContentType, r.Payload)
	if err != nil {
		return nil, err
	}
	if err := r.keepTenant(ev, "payload.tenant_id", "(replay it with a fixed event)"); err != nil {
		return nil, err
	}
	return ev, nil
}

// keepTenant gives ev r's tenant when it names none and refuses it, naming
// field, when it names another.
func (r *Rejected) keepTenant(ev *eventsv1.ServiceCompleted, field, instead string) error {
	switch t := strings.TrimSpace(ev.TenantId); t {
	case "", r.Tenant:
		ev.TenantId = r.Tenant
		return nil
	}
	return invalid.New(field, fmt.Sprintf("must be the rejected input's tenant %q %s: a replay keeps the tenant of what was refused", r.Tenant, instead))
}

// Replayed records that a replay stored r as serviceID at at.
func (r *Rejected) Replayed(serviceID string, at time.Time) {
	r.ReplayedAt, r.ReplayedServiceID = &at, serviceID
}

// Subject is what names a person in a refused input: the external id the
// upstream system gives them, their phone and their email (blank ones
// name no one).
type Subject struct {
	ExternalID, Phone, Email string
}

// minContact is the shortest phone or email looked for as it is in a
// payload: a shorter one would be found in unrelated bytes.
const minContact = 6

// Names says whether r's payload names s: it decodes to an event whose
// customer has s's external id, or it holds s's phone or email anywhere,
// as it is (emails in any case), which also finds them in a payload that
// does not decode (a broken one, a batch) and beyond the customer (a
// referral, a note); JSON that does not decode names s by its
// "externalId" (or "external_id") field too. A payload that no longer opens (OpenErr) names no one
// that can be told.
func (r *Rejected) Names(s Subject) bool {
	if r.OpenErr != nil || len(r.Payload) == 0 {
		return false
	}
	if id := strings.TrimSpace(s.ExternalID); id != "" {
		ev, err := Decode(r.ContentType, r.Payload)
		if err == nil && strings.TrimSpace(ev.GetCustomer().GetExternalId()) == id {
			return true
		}
		// JSON that does not decode as an event still names the
		// customer by its field.
		if err != nil && regexp.MustCompile(`"external(Id|_id)"\s*:\s*"\s*`+regexp.QuoteMeta(id)+`\s*"`).Match(r.Payload) {
			return true
		}
	}
	if p := strings.TrimSpace(s.Phone); len(p) >= minContact && bytes.Contains(r.Payload, []byte(p)) {
		return true
	}
	if e := strings.TrimSpace(s.Email); len(e) >= minContact && bytes.Contains(bytes.ToLower(r.Payload), []byte(strings.ToLower(e))) {
		return true
	}
	return false
}

// ServiceType is a service type events may name: a built-in one
// (ServiceTypes) or one a tenant registered beside them.
type ServiceType struct {
	Name, Description string
	BuiltIn           bool
}
