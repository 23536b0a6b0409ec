package complaint

import (
	"fmt"
	"strings"
	"time"

	"github.com/huifang/huifang/pkg/invalid"
)

// Letter is an open letter (公开信): one answer to the same issue of many
// customers, filed with each of their complaints (seed 000: the same issue
// for many residents may be answered by an open letter).
type Letter struct {
	ID           string
	TenantID     string
	Title        string
	Body         string
	By           string
	ComplaintIDs []string
	CreatedAt    time.Time
}

// NewLetter checks a letter: title, body and author are required, and it
// answers at least one complaint, each named once.
func NewLetter(id, tenant, title, body, by string, complaintIDs []string, at time.Time) (Letter, error) {
	l := Letter{ID: id, TenantID: tenant, Title: strings.TrimSpace(title), Body: strings.TrimSpace(body), By: strings.TrimSpace(by), CreatedAt: at}
	var bad invalid.List
	for _, f := range [][2]string{{"title", l.Title}, {"body", l.Body}, {"by", l.By}} {
		if f[1] == "" {
			bad.Add(f[0], "is required")
		}
	}
	if len(complaintIDs) == 0 {
		bad.Add("complaint_ids", "at least one complaint the letter answers")
	}
	seen := map[string]bool{}
	for i, cid := range complaintIDs {
		cid = strings.TrimSpace(cid)
		if cid == "" || seen[cid] {
			bad.Add(fmt.Sprintf("complaint_ids[%d]", i), "must be a complaint id, each once")
			continue
		}
		seen[cid] = true
		l.ComplaintIDs = append(l.ComplaintIDs, cid)
	}
	return l, bad.Err()
}

// Step is the step the letter adds to the history of each complaint it answers.
func (l Letter) Step() Step {
	return Step{Kind: StepLetter, By: l.By, At: l.CreatedAt, Detail: l.ID + ": " + l.Title}
}
