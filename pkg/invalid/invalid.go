// Package invalid describes bad input: which field broke which rule. The gRPC
// layer turns it into InvalidArgument with field violations, the event
// consumers into a dead letter whose reason names the field.
package invalid

import (
	"errors"
	"strings"
)

// Violation is one broken rule.
type Violation struct {
	// Field is the path of the field, e.g. "customer.external_id".
	Field string
	// Rule says, in words, what the field must be.
	Rule string
}

// Error is bad input with one or more violations.
type Error struct {
	Violations []Violation
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.Field + ": " + v.Rule
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// New returns an error for one violation.
func New(field, rule string) *Error {
	return &Error{Violations: []Violation{{Field: field, Rule: rule}}}
}

// List gathers violations; its Err is nil when none were added.
type List struct {
	v []Violation
}

// Add records that field broke rule.
func (l *List) Add(field, rule string) {
	l.v = append(l.v, Violation{Field: field, Rule: rule})
}

// Err returns the gathered violations as an *Error, or nil.
func (l *List) Err() error {
	if len(l.v) == 0 {
		return nil
	}
	return &Error{Violations: l.v}
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
