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

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"

	"github.com/huifang/huifang/pkg/invalid"
)

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
func Score(scores []*feedbackv1.ChecklistScore) (int32, error) {
	var l invalid.List
	seen := map[string]int{}
	total := 0
	for i, s := range scores {
		f := fmt.Sprintf("scores[%d]", i)
		item := strings.TrimSpace(s.GetItem())
		switch j, dup := seen[item]; {
		case !slices.Contains(Checklist, item):
			l.Add(f+".item", "must be one of "+strings.Join(Checklist, ", ")+" (seed 004)")
		case dup:
			l.Add(f+".item", fmt.Sprintf("%q is already scored in scores[%d]", item, j))
		default:
			seen[item] = i
		}
		if s.GetScore() < 0 || s.GetScore() > MaxItemScore {
			l.Add(f+".score", fmt.Sprintf("must be 0–%d", MaxItemScore))
		}
		total += int(s.GetScore())
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
