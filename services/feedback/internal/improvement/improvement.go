// Package improvement holds seed 003's improvement plans (改进落实率): for a
// problem a follow-up found (a complaint), the owning department's measures,
// each with an owner and a due date within 30 days of the problem, and
// which of them were carried out. Pure rules: no I/O.
package improvement

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/huifang/huifang/pkg/invalid"
)

// Window is seed 003's: a plan made and carried out within 30 days of the problem.
const Window = 30 * 24 * time.Hour

// Limits of a plan.
const (
	MaxMeasures = 20
	MaxText     = 500
	MaxOwner    = 100
	MaxNote     = 1000
)

// ErrCarriedOut: a measure was carried out already, or a plan with a
// carried-out measure cannot be remade.
var ErrCarriedOut = errors.New("improvement: already carried out")

// Measure is one thing to do, by whom and by when.
type Measure struct {
	ID          string
	Text        string
	Owner       string
	DueAt       time.Time
	CompletedAt time.Time
	CompletedBy string
	Note        string
}

// Done reports whether the measure was carried out.
func (m Measure) Done() bool { return !m.CompletedAt.IsZero() }

// Plan is the improvement plan of one complaint.
type Plan struct {
	ComplaintID string
	TenantID    string
	Measures    []Measure
	SetBy       string
	// SetAt is when the plan was first set; a remade plan keeps it.
	SetAt     time.Time
	UpdatedAt time.Time
}

// Done is how many measures were carried out.
func (p Plan) Done() int {
	n := 0
	for _, m := range p.Measures {
		if m.Done() {
			n++
		}
	}
	return n
}

// CarriedOut reports whether every measure was carried out.
func (p Plan) CarriedOut() bool { return len(p.Measures) > 0 && p.Done() == len(p.Measures) }

// LatestDue is the latest due date of the measures.
func (p Plan) LatestDue() time.Time {
	var t time.Time
	for _, m := range p.Measures {
		if m.DueAt.After(t) {
			t = m.DueAt
		}
	}
	return t
}

// CheckMeasures validates the measures of a plan for a problem found at
// found: 1 to MaxMeasures, each with text, owner and a due date from found
// to found + Window; violations name measures[i].field. It returns them
// trimmed.
func CheckMeasures(l *invalid.List, measures []Measure, found time.Time) []Measure {
	switch {
	case len(measures) == 0:
		l.Add("measures", "at least one measure is required")
	case len(measures) > MaxMeasures:
		l.Add("measures", fmt.Sprintf("at most %d measures", MaxMeasures))
	}
	out := make([]Measure, 0, len(measures))
	for i, m := range measures {
		f := fmt.Sprintf("measures[%d]", i)
		m := Measure{Text: strings.TrimSpace(m.Text), Owner: strings.TrimSpace(m.Owner), DueAt: m.DueAt.UTC()}
		switch n := len([]rune(m.Text)); {
		case n == 0:
			l.Add(f+".text", "is required")
		case n > MaxText:
			l.Add(f+".text", fmt.Sprintf("at most %d characters", MaxText))
		}
		switch n := len([]rune(m.Owner)); {
		case n == 0:
			l.Add(f+".owner", "is required")
		case n > MaxOwner:
			l.Add(f+".owner", fmt.Sprintf("at most %d characters", MaxOwner))
		}
		switch {
		case m.DueAt.IsZero():
			l.Add(f+".due_at", "is required")
		case m.DueAt.Before(found):
			l.Add(f+".due_at", fmt.Sprintf("is before the problem was found (%s)", found.UTC().Format(time.RFC3339)))
		case m.DueAt.After(found.Add(Window)):
			l.Add(f+".due_at", fmt.Sprintf("must be within 30 days of the problem (by %s, seed 003)", found.Add(Window).UTC().Format(time.RFC3339)))
		}
		out = append(out, m)
	}
	return out
}

// Set makes the plan of complaint complaintID (old is its current plan,
// nil for none) with measures already checked (CheckMeasures), giving each
// an id from newID. A plan with a carried-out measure is not remade.
func Set(old *Plan, tenantID, complaintID string, measures []Measure, by string, now time.Time, newID func() string) (Plan, error) {
	p := Plan{ComplaintID: complaintID, TenantID: tenantID, SetBy: by, SetAt: now, UpdatedAt: now}
	if old != nil {
		if old.Done() > 0 {
			return Plan{}, fmt.Errorf("%w: complaint %s has a measure carried out; its plan stays", ErrCarriedOut, complaintID)
		}
		p.SetAt = old.SetAt
	}
	for _, m := range measures {
		m.ID = newID()
		p.Measures = append(p.Measures, m)
	}
	return p, nil
}

// ErrNoMeasure: the plan has no measure of that id.
var ErrNoMeasure = errors.New("improvement: no such measure")

// Complete marks measure id carried out at at by by, with a note (checked
// by the caller). It returns the index of the measure.
func (p *Plan) Complete(id, by, note string, at, now time.Time) (int, error) {
	for i := range p.Measures {
		m := &p.Measures[i]
		if m.ID != id {
			continue
		}
		if m.Done() {
			return 0, fmt.Errorf("%w: measure %s on %s", ErrCarriedOut, id, m.CompletedAt.Format(time.RFC3339))
		}
		m.CompletedAt, m.CompletedBy, m.Note = at.UTC(), by, note
		p.UpdatedAt = now
		return i, nil
	}
	return 0, fmt.Errorf("%w: %s in the plan of complaint %s", ErrNoMeasure, id, p.ComplaintID)
}
