// Package packs holds the policy packs that ship with the scheduler: one per
// seed policy of DOMAIN.md, as JSON data a tenant loads with LoadPolicyPack
// (or edits and sends with CreatePolicy).
package packs

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/huifang/huifang/services/scheduler/internal/policy"
)

//go:embed *.json
var files embed.FS

// Pack is a named set of policies for one kind of business.
type Pack struct {
	Name        string `json:"name"`
	Title       string `json:"title"`
	Seed        string `json:"seed"`
	Description string `json:"description"`
	// Inactive names the policies loaded switched off: alternatives a tenant
	// turns on with ActivatePolicy instead of another (hospital-first-week).
	Inactive []string        `json:"inactive,omitempty"`
	Policies []policy.Policy `json:"policies"`
}

// LoadsActive tells whether LoadPolicyPack turns the named policy on.
func (p Pack) LoadsActive(name string) bool { return !slices.Contains(p.Inactive, name) }

// All returns every shipped pack, by name; each policy is validated.
func All() ([]Pack, error) {
	names, err := fs.Glob(files, "*.json")
	if err != nil {
		return nil, fmt.Errorf("packs: %w", err)
	}
	slices.Sort(names)
	out := make([]Pack, 0, len(names))
	for _, n := range names {
		b, err := files.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("packs: %s: %w", n, err)
		}
		p, err := Parse(b)
		if err != nil {
			return nil, fmt.Errorf("packs: %s: %w", n, err)
		}
		if p.Name != strings.TrimSuffix(n, ".json") {
			return nil, fmt.Errorf("packs: %s names itself %q", n, p.Name)
		}
		out = append(out, p)
	}
	return out, nil
}

// Get returns the pack of that name.
func Get(name string) (Pack, bool, error) {
	all, err := All()
	if err != nil {
		return Pack{}, false, err
	}
	for _, p := range all {
		if p.Name == name {
			return p, true, nil
		}
	}
	return Pack{}, false, nil
}

// Parse reads a pack from JSON strictly and validates every policy.
func Parse(b []byte) (Pack, error) {
	var p Pack
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("decode: %w", err)
	}
	for _, n := range p.Inactive {
		if !slices.ContainsFunc(p.Policies, func(pol policy.Policy) bool { return pol.Name == n }) {
			return p, fmt.Errorf("inactive names %q, which is not a policy of the pack", n)
		}
	}
	for i := range p.Policies {
		pol := &p.Policies[i]
		pol.Pack = p.Name
		for j := range pol.Steps {
			if pol.Steps[j].SampleRate == 0 {
				pol.Steps[j].SampleRate = 1
			}
		}
		if err := policy.Validate(*pol); err != nil {
			return p, fmt.Errorf("policy %s: %w", pol.Name, err)
		}
	}
	return p, nil
}
