// Package contacts asks intake, the one keeper of customers' contacts, for
// the address of a message or a call at the moment of use (intake's
// RevealContact, on dispatch's own service account, for a named message or
// agent, written to intake's audit log). Dispatch keeps no clear contact.
package contacts

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

// Request names the contact wanted and why.
type Request struct {
	Tenant, CustomerID string
	// Channel picks the address: the email for email, the phone otherwise.
	Channel typesv1.Channel
	// Purpose and OnBehalfOf go to intake's audit log.
	Purpose, OnBehalfOf string
}

// Contact is a customer's name and the address of the channel asked.
type Contact struct {
	Name, Address string
}

// ErrGone says that intake holds no such contact (any more): the customer
// is unknown or erased, or has no address for the channel. Asking again
// will not change it.
var ErrGone = errors.New("contacts: intake holds no such contact")

// ErrUnavailable says that intake could not answer for the moment (away,
// the network, a rate, a refusal of dispatch's token): ask again later.
var ErrUnavailable = errors.New("contacts: intake could not reveal the contact for the moment")

// Book reveals contacts.
type Book interface {
	Reveal(ctx context.Context, r Request) (Contact, error)
}

// Intake is the Book of intake's gRPC API.
type Intake struct {
	Client intakev1.IntakeServiceClient
}

// Reveal asks intake for the customer's name and the channel's address.
// ErrGone when intake has none; ErrUnavailable for the moment (intake or
// the network away, a rate): try again later.
func (i *Intake) Reveal(ctx context.Context, r Request) (Contact, error) {
	field := intakev1.ContactField_CONTACT_FIELD_PHONE
	if r.Channel == typesv1.Channel_CHANNEL_EMAIL {
		field = intakev1.ContactField_CONTACT_FIELD_EMAIL
	}
	resp, err := i.Client.RevealContact(ctx, &intakev1.RevealContactRequest{TenantId: r.Tenant, CustomerId: r.CustomerID,
		Fields: []intakev1.ContactField{intakev1.ContactField_CONTACT_FIELD_NAME, field}, Purpose: r.Purpose, OnBehalfOf: r.OnBehalfOf})
	switch status.Code(err) {
	case codes.OK:
	case codes.NotFound:
		return Contact{}, fmt.Errorf("%w: customer %s", ErrGone, r.CustomerID)
	default:
		return Contact{}, fmt.Errorf("%w: customer %s: %w", ErrUnavailable, r.CustomerID, err)
	}
	c := Contact{Name: resp.GetName(), Address: resp.GetPhone()}
	if field == intakev1.ContactField_CONTACT_FIELD_EMAIL {
		c.Address = resp.GetEmail()
	}
	if c.Address == "" {
		return Contact{}, fmt.Errorf("%w: customer %s has no address for %s", ErrGone, r.CustomerID, r.Channel)
	}
	return c, nil
}
