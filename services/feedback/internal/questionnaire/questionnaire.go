// Package questionnaire holds versioned questionnaire templates: what a
// template must be, the seed templates that ship with Huifang, and how a
// set of answers is checked against one version. It does no I/O.
package questionnaire

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
)

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
func Normalize(q *feedbackv1.Questionnaire) {
	q.Id = strings.TrimSpace(q.Id)
	q.Name = strings.TrimSpace(q.Name)
	for _, qu := range q.Questions {
		if qu == nil {
			continue
		}
		qu.Id = strings.TrimSpace(qu.Id)
		qu.Aspect = strings.TrimSpace(qu.Aspect)
		qu.Text = strings.TrimSpace(qu.Text)
		for i := range qu.Choices {
			qu.Choices[i] = strings.TrimSpace(qu.Choices[i])
		}
	}
}

// Validate checks a normalized template and names every field that breaks a
// rule (prefix is the path of q in the request, e.g. "questionnaire").
func Validate(q *feedbackv1.Questionnaire, prefix string) error {
	var l invalid.List
	f := func(s string) string { return prefix + "." + s }
	if !IDPattern.MatchString(q.Id) {
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
		if qu == nil {
			l.Add(p, "must not be empty")
			continue
		}
		if !IDPattern.MatchString(qu.Id) {
			l.Add(p+".id", "is required and must match "+IDPattern.String())
		} else if j, dup := ids[qu.Id]; dup {
			l.Add(p+".id", fmt.Sprintf("%q is already the id of questions[%d]", qu.Id, j))
		} else {
			ids[qu.Id] = i
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
func Check(q *feedbackv1.Questionnaire, answers []*typesv1.Answer, l *invalid.List, prefix string, complete bool) []*typesv1.Answer {
	byID := map[string]*feedbackv1.Question{}
	byAspect := map[string][]*feedbackv1.Question{}
	for _, qu := range q.Questions {
		byID[qu.Id] = qu
		byAspect[qu.Aspect] = append(byAspect[qu.Aspect], qu)
	}
	answered := map[string]int{}
	out := make([]*typesv1.Answer, 0, len(answers))
	for i, a := range answers {
		f := fmt.Sprintf("%s[%d]", prefix, i)
		if a == nil {
			l.Add(f, "must not be empty")
			continue
		}
		var qu *feedbackv1.Question
		switch id := strings.TrimSpace(a.QuestionId); {
		case id != "":
			if qu = byID[id]; qu == nil {
				l.Add(f+".question_id", fmt.Sprintf("questionnaire %s v%d has no question %q", q.Id, q.Version, id))
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
				l.Add(f+".aspect", fmt.Sprintf("questionnaire %s v%d asks nothing about %q", q.Id, q.Version, a.Aspect))
				continue
			case 1:
				qu = qs[0]
			default:
				l.Add(f+".question_id", fmt.Sprintf("is required: several questions are about %q", a.Aspect))
				continue
			}
		}
		if j, dup := answered[qu.Id]; dup {
			l.Add(f+".question_id", fmt.Sprintf("question %q is already answered in %s[%d]; each question once", qu.Id, prefix, j))
			continue
		}
		answered[qu.Id] = i
		checkValue(qu, a, l, f)
		c := &typesv1.Answer{QuestionId: qu.Id, Aspect: qu.Aspect, Rating: a.Rating, Comment: a.Comment,
			Score: a.Score, Yes: a.Yes, Choice: a.Choice, Text: a.Text}
		out = append(out, c)
	}
	for _, qu := range q.Questions {
		if _, ok := answered[qu.Id]; complete && qu.Required && !ok {
			l.Add(prefix, fmt.Sprintf("question %q (%s) is required by questionnaire %s v%d", qu.Id, qu.Aspect, q.Id, q.Version))
		}
	}
	return out
}

// checkValue checks that a carries the one value its question's kind asks for, in range.
func checkValue(qu *feedbackv1.Question, a *typesv1.Answer, l *invalid.List, f string) {
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
			l.Add(f+"."+name, fmt.Sprintf("question %q is a %s question: answer with %s only", qu.Id, kindName(qu.Kind), want))
		}
	}
	if !set[want] {
		l.Add(f+"."+want, fmt.Sprintf("is required: question %q is a %s question", qu.Id, kindName(qu.Kind)))
		return
	}
	switch qu.Kind {
	case feedbackv1.QuestionKind_QUESTION_KIND_RATING:
		if _, known := typesv1.Rating_name[int32(a.Rating)]; !known {
			l.Add(f+".rating", fmt.Sprintf("unknown rating %d", a.Rating))
		}
	case feedbackv1.QuestionKind_QUESTION_KIND_SCALE:
		if s := a.GetScore(); s < 1 || s > 5 {
			l.Add(f+".score", fmt.Sprintf("must be 1–5, got %d", s))
		}
	case feedbackv1.QuestionKind_QUESTION_KIND_NPS:
		if s := a.GetScore(); s < 0 || s > 10 {
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

func kindName(k feedbackv1.QuestionKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "QUESTION_KIND_"))
}

// NPS returns the score of the first NPS question q asks that answers
// answer, or nil.
func NPS(q *feedbackv1.Questionnaire, answers []*typesv1.Answer) *int32 {
	if q == nil {
		return nil
	}
	for _, qu := range q.Questions {
		if qu.Kind != feedbackv1.QuestionKind_QUESTION_KIND_NPS {
			continue
		}
		for _, a := range answers {
			if a.QuestionId == qu.Id && a.Score != nil {
				s := a.GetScore()
				return &s
			}
		}
	}
	return nil
}
