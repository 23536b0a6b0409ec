// Package questionnaire holds versioned questionnaire templates: what a
// template must be, the seed templates that ship with Huifang, and how a
// set of answers is checked against one version. It does no I/O.
package questionnaire

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/enum"
	"github.com/huifang/huifang/pkg/invalid"
)

// Questionnaire is one version of a template.
type Questionnaire struct {
	// TenantID is the owner; AllTenants for the seed templates.
	TenantID    string
	ID          string
	Version     int32
	Name        string
	Description string
	// Seed names the seed document a seed template comes from ("003"), "" otherwise.
	Seed      string
	Questions []Question
	CreatedAt time.Time
}

// Question is one question of a template.
type Question struct {
	// ID is unique within the questionnaire, e.g. "q1" or "overall".
	ID string
	// Aspect is what the question is about, e.g. "overall" (seed 003); answers report it.
	Aspect   string
	Text     string
	Kind     feedbackv1.QuestionKind
	Required bool
	// Choices are the options of a choice question.
	Choices []string
}

// Answer is a customer's answer to one question, or, without a
// questionnaire, the rating of a free aspect. Exactly the value the
// question's kind asks for is set.
type Answer struct {
	// QuestionID names the question; when empty, the question is found by Aspect.
	QuestionID string
	Aspect     string
	Rating     typesv1.Rating
	Comment    string
	// Score is a 1–5 scale or an NPS 0–10 answer.
	Score *int32
	// Yes is a yes/no answer.
	Yes *bool
	// Choice is the option picked for a choice question.
	Choice string
	// Text is a free-text answer.
	Text string
}

// AllTenants is the tenant of the seed templates, which every tenant may use.
const AllTenants = "*"

var (
	// IDPattern is the pattern of questionnaire and question ids.
	IDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	// AspectPattern is the pattern of aspects, as answers and analytics name them.
	AspectPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
)

// Limits on a template's size.
const (
	MaxQuestions = 100
	MaxChoices   = 20
	MaxText      = 2000
)

// Normalize trims the names of q in place.
func Normalize(q *Questionnaire) {
	q.ID = strings.TrimSpace(q.ID)
	q.Name = strings.TrimSpace(q.Name)
	for i := range q.Questions {
		qu := &q.Questions[i]
		qu.ID = strings.TrimSpace(qu.ID)
		qu.Aspect = strings.TrimSpace(qu.Aspect)
		qu.Text = strings.TrimSpace(qu.Text)
		for i := range qu.Choices {
			qu.Choices[i] = strings.TrimSpace(qu.Choices[i])
		}
	}
}

// Validate checks a normalized template and names every field that breaks a
// rule (prefix is the path of q in the request, e.g. "questionnaire").
func Validate(q Questionnaire, prefix string) error {
	var l invalid.List
	f := func(s string) string { return prefix + "." + s }
	if !IDPattern.MatchString(q.ID) {
		l.Add(f("id"), "is required and must match "+IDPattern.String())
	}
	if q.Name == "" {
		l.Add(f("name"), "is required")
	}
	switch n := len(q.Questions); {
	case n == 0:
		l.Add(f("questions"), "at least one question is required")
	case n > MaxQuestions:
		l.Add(f("questions"), fmt.Sprintf("at most %d questions", MaxQuestions))
	}
	ids := map[string]int{}
	for i, qu := range q.Questions {
		p := f(fmt.Sprintf("questions[%d]", i))
		if !IDPattern.MatchString(qu.ID) {
			l.Add(p+".id", "is required and must match "+IDPattern.String())
		} else if j, dup := ids[qu.ID]; dup {
			l.Add(p+".id", fmt.Sprintf("%q is already the id of questions[%d]", qu.ID, j))
		} else {
			ids[qu.ID] = i
		}
		if !AspectPattern.MatchString(qu.Aspect) {
			l.Add(p+".aspect", "is required and must match "+AspectPattern.String()+", e.g. \"overall\" (seed 003)")
		}
		if qu.Text == "" {
			l.Add(p+".text", "is required: what the agent asks")
		}
		switch qu.Kind {
		case feedbackv1.QuestionKind_QUESTION_KIND_CHOICE:
			if len(qu.Choices) < 2 || len(qu.Choices) > MaxChoices {
				l.Add(p+".choices", fmt.Sprintf("a choice question needs 2–%d options", MaxChoices))
			}
			seen := map[string]bool{}
			for k, c := range qu.Choices {
				if c == "" || seen[c] {
					l.Add(fmt.Sprintf("%s.choices[%d]", p, k), "must be non-empty and unique")
				}
				seen[c] = true
			}
		case feedbackv1.QuestionKind_QUESTION_KIND_RATING, feedbackv1.QuestionKind_QUESTION_KIND_SCALE,
			feedbackv1.QuestionKind_QUESTION_KIND_NPS, feedbackv1.QuestionKind_QUESTION_KIND_YES_NO,
			feedbackv1.QuestionKind_QUESTION_KIND_TEXT:
			if len(qu.Choices) > 0 {
				l.Add(p+".choices", "only choice questions have options")
			}
		default:
			l.Add(p+".kind", "must be one of QUESTION_KIND_RATING, _SCALE, _NPS, _YES_NO, _CHOICE, _TEXT")
		}
	}
	return l.Err()
}

// Check checks answers against q and returns them completed: each answer
// names its question and that question's aspect. An answer finds its
// question by question_id, or by aspect when one question of q has it.
// Violations are added to l under prefix ("answers"). With complete set,
// every required question must be answered; an amendment replaces only
// some answers and leaves it unset.
func Check(q Questionnaire, answers []Answer, l *invalid.List, prefix string, complete bool) []Answer {
	byID := map[string]*Question{}
	byAspect := map[string][]*Question{}
	for i := range q.Questions {
		qu := &q.Questions[i]
		byID[qu.ID] = qu
		byAspect[qu.Aspect] = append(byAspect[qu.Aspect], qu)
	}
	answered := map[string]int{}
	out := make([]Answer, 0, len(answers))
	for i, a := range answers {
		f := fmt.Sprintf("%s[%d]", prefix, i)
		var qu *Question
		switch id := strings.TrimSpace(a.QuestionID); {
		case id != "":
			if qu = byID[id]; qu == nil {
				l.Add(f+".question_id", fmt.Sprintf("questionnaire %s v%d has no question %q", q.ID, q.Version, id))
				continue
			}
			if a.Aspect != "" && a.Aspect != qu.Aspect {
				l.Add(f+".aspect", fmt.Sprintf("question %q is about %q, not %q", id, qu.Aspect, a.Aspect))
			}
		case a.Aspect == "":
			l.Add(f+".question_id", "is required (or an aspect that one question of the questionnaire has)")
			continue
		default:
			switch qs := byAspect[a.Aspect]; len(qs) {
			case 0:
				l.Add(f+".aspect", fmt.Sprintf("questionnaire %s v%d asks nothing about %q", q.ID, q.Version, a.Aspect))
				continue
			case 1:
				qu = qs[0]
			default:
				l.Add(f+".question_id", fmt.Sprintf("is required: several questions are about %q", a.Aspect))
				continue
			}
		}
		if j, dup := answered[qu.ID]; dup {
			l.Add(f+".question_id", fmt.Sprintf("question %q is already answered in %s[%d]; each question once", qu.ID, prefix, j))
			continue
		}
		answered[qu.ID] = i
		checkValue(qu, a, l, f)
		a.QuestionID, a.Aspect = qu.ID, qu.Aspect
		out = append(out, a)
	}
	for _, qu := range q.Questions {
		if _, ok := answered[qu.ID]; complete && qu.Required && !ok {
			l.Add(prefix, fmt.Sprintf("question %q (%s) is required by questionnaire %s v%d", qu.ID, qu.Aspect, q.ID, q.Version))
		}
	}
	return out
}

// checkValue checks that a carries the one value its question's kind asks for, in range.
func checkValue(qu *Question, a Answer, l *invalid.List, f string) {
	want := map[feedbackv1.QuestionKind]string{
		feedbackv1.QuestionKind_QUESTION_KIND_RATING: "rating",
		feedbackv1.QuestionKind_QUESTION_KIND_SCALE:  "score",
		feedbackv1.QuestionKind_QUESTION_KIND_NPS:    "score",
		feedbackv1.QuestionKind_QUESTION_KIND_YES_NO: "yes",
		feedbackv1.QuestionKind_QUESTION_KIND_CHOICE: "choice",
		feedbackv1.QuestionKind_QUESTION_KIND_TEXT:   "text",
	}[qu.Kind]
	set := map[string]bool{
		"rating": a.Rating != typesv1.Rating_RATING_UNSPECIFIED,
		"score":  a.Score != nil,
		"yes":    a.Yes != nil,
		"choice": a.Choice != "",
		"text":   a.Text != "",
	}
	for _, name := range []string{"rating", "score", "yes", "choice", "text"} {
		if set[name] && name != want {
			l.Add(f+"."+name, fmt.Sprintf("question %q is a %s question: answer with %s only", qu.ID, enum.Name(qu.Kind), want))
		}
	}
	if !set[want] {
		l.Add(f+"."+want, fmt.Sprintf("is required: question %q is a %s question", qu.ID, enum.Name(qu.Kind)))
		return
	}
	switch qu.Kind {
	case feedbackv1.QuestionKind_QUESTION_KIND_RATING:
		if _, known := typesv1.Rating_name[int32(a.Rating)]; !known {
			l.Add(f+".rating", fmt.Sprintf("unknown rating %d", a.Rating))
		}
	case feedbackv1.QuestionKind_QUESTION_KIND_SCALE:
		if s := *a.Score; s < 1 || s > 5 {
			l.Add(f+".score", fmt.Sprintf("must be 1–5, got %d", s))
		}
	case feedbackv1.QuestionKind_QUESTION_KIND_NPS:
		if s := *a.Score; s < 0 || s > 10 {
			l.Add(f+".score", fmt.Sprintf("must be 0–10 (NPS), got %d", s))
		}
	case feedbackv1.QuestionKind_QUESTION_KIND_CHOICE:
		if !slices.Contains(qu.Choices, a.Choice) {
			l.Add(f+".choice", fmt.Sprintf("must be one of %s", strings.Join(qu.Choices, ", ")))
		}
	case feedbackv1.QuestionKind_QUESTION_KIND_TEXT:
		if len([]rune(a.Text)) > MaxText {
			l.Add(f+".text", fmt.Sprintf("at most %d characters", MaxText))
		}
	}
}

// NPS returns the score of the first NPS question q asks that answers
// answer, or nil.
func NPS(q *Questionnaire, answers []Answer) *int32 {
	if q == nil {
		return nil
	}
	for _, qu := range q.Questions {
		if qu.Kind != feedbackv1.QuestionKind_QUESTION_KIND_NPS {
			continue
		}
		for _, a := range answers {
			if a.QuestionID == qu.ID && a.Score != nil {
				s := *a.Score
				return &s
			}
		}
	}
	return nil
}
