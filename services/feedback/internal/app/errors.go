package app

import (
	"errors"
	"fmt"
)

// Refusals of the use cases, besides *invalid.Error (bad input, with the
// fields) and *complaint.StateError (a step that does not fit the
// complaint's status). The error's message is for the caller.
var (
	// ErrNotFound: no such visit, record, complaint or questionnaire in the tenant.
	ErrNotFound = errors.New("app: not found")
	// ErrAlreadyLogged: the visit has its record; records are append-only.
	ErrAlreadyLogged = errors.New("app: the visit has its record")
)

// refusal is one of the refusals, said in words.
type refusal struct {
	kind error
	msg  string
}

func (r *refusal) Error() string { return r.msg }

func (r *refusal) Is(target error) bool { return target == r.kind }

// refuse returns the refusal kind, in the words of format.
func refuse(kind error, format string, args ...any) error {
	return &refusal{kind: kind, msg: fmt.Sprintf(format, args...)}
}
