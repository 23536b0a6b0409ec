// Package review holds quality assurance of follow-up records (seeds 000,
// 001, 004): a reproducible random sample of an agent's records per period,
// and the checklist a reviewer scores a record against. It does no I/O.
package review

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/huifang/huifang/pkg/invalid"
)

// Review is a reviewer's QA review of one record.
type Review struct {
	ID       string
	TenantID string
	RecordID string
	// AgentID is the agent who logged the record.
	AgentID    string
	ReviewerID string
	Scores     []ItemScore
	// Score is 0–100: the share of full marks (see Score).
	Score    int32
	Comments string
	At       time.Time
}

// ItemScore is the score of one checklist item.
type ItemScore struct {
	Item    string
	Score   int32
	Comment string
}

// New checks a review's reviewer and scores and returns it, scored, for
// the record it names; Of then ties it to the record's agent.
func New(id, tenant, recordID, reviewerID string, scores []ItemScore, comments string, at time.Time) (Review, error) {
	r := Review{ID: id, TenantID: tenant, RecordID: strings.TrimSpace(recordID), ReviewerID: strings.TrimSpace(reviewerID),
		Comments: strings.TrimSpace(comments), At: at}
	var l invalid.List
	if r.RecordID == "" {
		l.Add("record_id", "is required")
	}
	if r.ReviewerID == "" {
		l.Add("reviewer_id", "is required")
	}
	score, err := Score(scores)
	if bad, ok := invalid.As(err); ok {
		for _, v := range bad.Violations {
			l.Add(v.Field, v.Rule)
		}
	}
	if err := l.Err(); err != nil {
		return Review{}, err
	}
	for _, s := range scores {
		s.Item = strings.TrimSpace(s.Item)
		r.Scores = append(r.Scores, s)
	}
	r.Score = score
	return r, nil
}

// Of ties r to the record it reviews, logged by agentID; an agent does not
// review their own record.
func (r *Review) Of(recordID, agentID string) error {
	if agentID == r.ReviewerID {
		return invalid.New("reviewer_id", "an agent does not review their own record")
	}
	r.RecordID, r.AgentID = recordID, agentID
	return nil
}

// SampleSize checks what a sample asks for: an agent, a period
// [start, end) (a zero time is a missing or invalid one) and a size (0 for
// DefaultSize, at most MaxSize); it returns the size to draw.
func SampleSize(agent string, start, end time.Time, size int) (int, error) {
	var l invalid.List
	if strings.TrimSpace(agent) == "" {
		l.Add("agent_id", "is required")
	}
	if start.IsZero() {
		l.Add("period_start", "is required: a valid timestamp")
	}
	if end.IsZero() {
		l.Add("period_end", "is required: a valid timestamp")
	} else if !start.IsZero() && !end.After(start) {
		l.Add("period_end", "must be after period_start")
	}
	if size == 0 {
		size = DefaultSize
	}
	if size < 0 || size > MaxSize {
		l.Add("size", "must be 0 (3) to 100")
	}
	return size, l.Err()
}

// DefaultSize is the sample size when none is asked: seed 000's auto dealer
// spot-checks at least 3 times a week.
const DefaultSize = 3

// MaxSize bounds one sample.
const MaxSize = 100

// Checklist is what a reviewer checks in a record (seed 004: confirm
// identity, state the purpose, follow the content, record; seed 001: the
// supervision group checks records and recordings against the script).
var Checklist = []string{"identity_confirmed", "purpose_stated", "script_followed", "answers_complete"}

// MaxItemScore is the full mark of one checklist item.
const MaxItemScore = 5

// Sample returns up to size of ids, in draw order: each id is ranked by a
// SHA-256 of the draw's key and the id, so the same key over the same
// records draws the same sample, and a record added later displaces a drawn
// one only if it ranks above it.
func Sample(key string, ids []string, size int) []string {
	type ranked struct {
		id   string
		rank uint64
	}
	list := make([]ranked, len(ids))
	for i, id := range ids {
		h := sha256.Sum256([]byte(key + "\x00" + id))
		list[i] = ranked{id, binary.BigEndian.Uint64(h[:8])}
	}
	slices.SortFunc(list, func(a, b ranked) int {
		return cmp.Or(cmp.Compare(a.rank, b.rank), strings.Compare(a.id, b.id))
	})
	out := make([]string, 0, min(size, len(list)))
	for _, r := range list[:min(size, len(list))] {
		out = append(out, r.id)
	}
	return out
}

// Key is the draw key of an agent's period.
func Key(tenant, agent string, start, end time.Time) string {
	return fmt.Sprintf("%s|%s|%s|%s", tenant, agent, start.UTC().Format(time.RFC3339Nano), end.UTC().Format(time.RFC3339Nano))
}

// Score checks a review's checklist scores and returns the record's score,
// 0–100: the share of full marks, rounded to the nearest whole number.
// Every checklist item is scored once, 0–MaxItemScore.
func Score(scores []ItemScore) (int32, error) {
	var l invalid.List
	seen := map[string]int{}
	total := 0
	for i, s := range scores {
		f := fmt.Sprintf("scores[%d]", i)
		item := strings.TrimSpace(s.Item)
		switch j, dup := seen[item]; {
		case !slices.Contains(Checklist, item):
			l.Add(f+".item", "must be one of "+strings.Join(Checklist, ", ")+" (seed 004)")
		case dup:
			l.Add(f+".item", fmt.Sprintf("%q is already scored in scores[%d]", item, j))
		default:
			seen[item] = i
		}
		if s.Score < 0 || s.Score > MaxItemScore {
			l.Add(f+".score", fmt.Sprintf("must be 0–%d", MaxItemScore))
		}
		total += int(s.Score)
	}
	for _, item := range Checklist {
		if _, ok := seen[item]; !ok {
			l.Add("scores", fmt.Sprintf("checklist item %q is not scored", item))
		}
	}
	if err := l.Err(); err != nil {
		return 0, err
	}
	full := len(Checklist) * MaxItemScore
	return int32((total*100 + full/2) / full), nil
}
