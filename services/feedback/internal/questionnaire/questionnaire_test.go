package questionnaire_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/feedback/internal/questionnaire"
)

func seed(t *testing.T, id string) questionnaire.Questionnaire {
	t.Helper()
	for _, q := range questionnaire.Seeds() {
		if q.ID == id {
			return q
		}
	}
	t.Fatalf("no seed %s", id)
	return questionnaire.Questionnaire{}
}

func aspects(q questionnaire.Questionnaire) []string {
	var out []string
	for _, qu := range q.Questions {
		out = append(out, qu.Aspect)
	}
	return out
}

func TestSeedsAreValid(t *testing.T) {
	yes := true
	for _, q := range questionnaire.Seeds() {
		t.Run(q.ID, func(t *testing.T) {
			require.NoError(t, questionnaire.Validate(q, "questionnaire"))
			require.EqualValues(t, 1, q.Version)
			require.Equal(t, "*", q.TenantID)
			var l invalid.List
			minimal := []questionnaire.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}}
			if q.ID == questionnaire.SeedCementDelivery {
				// What the call is for (seed 000): product and quantity confirmed.
				minimal = []questionnaire.Answer{{Aspect: questionnaire.AspectProductMatches, Yes: &yes}, {Aspect: questionnaire.AspectQuantityMatches, Yes: &yes}}
			}
			if q.ID == questionnaire.SeedFollowUpService {
				// Seed 004: the survey rates the follow-up service itself.
				minimal = []questionnaire.Answer{{Aspect: questionnaire.AspectFollowUpService, Rating: typesv1.Rating_RATING_SATISFIED}}
			}
			questionnaire.Check(q, minimal, &l, "answers", true)
			require.NoError(t, l.Err(), "the minimal answer set is complete for every seed template")
		})
	}
}

// Seed 004 (follow-up center): "periodic satisfaction surveys about the
// follow-up service itself" (四(二)3 定期開展客戶滿意度調查,了解客戶對隨訪服務的評價和意見):
// the survey's rating is an aspect of its own, never "overall", so that it
// is a figure apart from the satisfaction with the services followed up; it
// asks what seed 004's phone follow-up rules require (identity and purpose,
// a convenient time, listening) and whether what the customer raised was
// answered.
func TestFollowUpServiceSurvey(t *testing.T) {
	s := seed(t, questionnaire.SeedFollowUpService)
	require.Equal(t, "004", s.Seed)
	require.Equal(t, []string{questionnaire.AspectFollowUpService, "followup_introduced", "followup_convenient", "followup_listened", "followup_answered", "suggestions"}, aspects(s))
	require.NotContains(t, aspects(s), "overall")
	var l invalid.List
	questionnaire.Check(s, []questionnaire.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}}, &l, "answers", true)
	require.Error(t, l.Err(), "the rating of the follow-up service is required")
}

func TestSeedContents(t *testing.T) {
	// seed 003: the 14 rated aspects, overall impression included, all on the 3-level scale.
	p := seed(t, questionnaire.SeedProperty)
	require.Equal(t, []string{"complaint_handling", "equipment", "building_maintenance", "security", "fire_prevention", "cleaning",
		"landscaping", "parking", "clubhouse", "staff_efficiency", "staff_attitude", "manager_courtesy", "overall", "other"}, aspects(p))
	for _, qu := range p.Questions {
		require.Equal(t, feedbackv1.QuestionKind_QUESTION_KIND_RATING, qu.Kind)
	}
	// seed 001: product quality, service attitude, efficiency.
	require.Subset(t, aspects(seed(t, questionnaire.SeedAppliance)), []string{"product_quality", "service_attitude", "efficiency", "overall"})
	// seed 000 hospital: recovery, doctors, nurses, tests, environment, medication.
	require.Subset(t, aspects(seed(t, questionnaire.SeedHospital)), []string{"recovery", "doctors", "nurses", "tests", "environment", "medication", "overall"})
	// seed 000 auto dealer: satisfaction survey after every maintenance or repair.
	require.Subset(t, aspects(seed(t, questionnaire.SeedAuto)), []string{"overall", "service_advisor", "repair_quality", "timeliness", "recommend"})
}

func TestValidate(t *testing.T) {
	good := func() *questionnaire.Questionnaire {
		return &questionnaire.Questionnaire{ID: "my-survey", Name: "mine", Questions: []questionnaire.Question{
			{ID: "q1", Aspect: "overall", Text: "overall?", Kind: feedbackv1.QuestionKind_QUESTION_KIND_RATING, Required: true},
			{ID: "q2", Aspect: "route", Text: "which?", Kind: feedbackv1.QuestionKind_QUESTION_KIND_CHOICE, Choices: []string{"a", "b"}},
		}}
	}
	tests := []struct {
		name   string
		modify func(q *questionnaire.Questionnaire)
		fields []string
	}{
		{"valid", func(*questionnaire.Questionnaire) {}, nil},
		{"no id, name or questions", func(q *questionnaire.Questionnaire) { q.ID, q.Name, q.Questions = "", "", nil },
			[]string{"questionnaire.id", "questionnaire.name", "questionnaire.questions"}},
		{"duplicate question id", func(q *questionnaire.Questionnaire) { q.Questions[1].ID = "q1" }, []string{"questionnaire.questions[1].id"}},
		{"bad aspect and no text", func(q *questionnaire.Questionnaire) { q.Questions[0].Aspect, q.Questions[0].Text = "Over-all", "" },
			[]string{"questionnaire.questions[0].aspect", "questionnaire.questions[0].text"}},
		{"no kind", func(q *questionnaire.Questionnaire) { q.Questions[0].Kind = 0 }, []string{"questionnaire.questions[0].kind"}},
		{"choice with one option", func(q *questionnaire.Questionnaire) { q.Questions[1].Choices = []string{"a"} }, []string{"questionnaire.questions[1].choices"}},
		{"options on a rating", func(q *questionnaire.Questionnaire) { q.Questions[0].Choices = []string{"a", "b"} }, []string{"questionnaire.questions[0].choices"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := good()
			tt.modify(q)
			questionnaire.Normalize(q)
			requireFields(t, questionnaire.Validate(*q, "questionnaire"), tt.fields)
		})
	}
}

func requireFields(t *testing.T, err error, want []string) {
	t.Helper()
	if want == nil {
		require.NoError(t, err)
		return
	}
	bad, ok := invalid.As(err)
	require.True(t, ok, "want *invalid.Error, got %v", err)
	var got []string
	for _, v := range bad.Violations {
		got = append(got, v.Field)
	}
	require.Equal(t, want, got)
}

func TestCheck(t *testing.T) {
	q := seed(t, questionnaire.SeedAuto)
	hosp := seed(t, questionnaire.SeedHospital)
	i := func(n int32) *int32 { return &n }
	b := func(v bool) *bool { return &v }
	overall := questionnaire.Answer{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED}
	tests := []struct {
		name    string
		q       questionnaire.Questionnaire
		answers []questionnaire.Answer
		fields  []string
	}{
		{"every kind in range", q, []questionnaire.Answer{overall,
			{QuestionID: "service_advisor", Score: i(5)}, {QuestionID: "fixed_first_time", Yes: b(false)},
			{Aspect: "timeliness", Yes: b(true)}, {QuestionID: "recommend", Score: i(0)}, {QuestionID: "suggestions", Text: "wash the car"}}, nil},
		{"a choice", hosp, []questionnaire.Answer{overall, {QuestionID: "recovery", Choice: "improving"}}, nil},
		{"required overall missing", q, []questionnaire.Answer{{QuestionID: "recommend", Score: i(9)}}, []string{"answers"}},
		{"scale out of range", q, []questionnaire.Answer{overall, {QuestionID: "service_advisor", Score: i(6)}}, []string{"answers[1].score"}},
		{"nps out of range", q, []questionnaire.Answer{overall, {QuestionID: "recommend", Score: i(11)}}, []string{"answers[1].score"}},
		{"wrong value for the kind", q, []questionnaire.Answer{overall, {QuestionID: "recommend", Rating: typesv1.Rating_RATING_SATISFIED}},
			[]string{"answers[1].rating", "answers[1].score"}},
		{"rating missing", q, []questionnaire.Answer{{Aspect: "overall"}}, []string{"answers[0].rating"}},
		{"unknown question", q, []questionnaire.Answer{overall, {QuestionID: "q99", Score: i(1)}}, []string{"answers[1].question_id"}},
		{"unknown aspect", q, []questionnaire.Answer{overall, {Aspect: "parking", Rating: typesv1.Rating_RATING_SATISFIED}}, []string{"answers[1].aspect"}},
		{"question and aspect disagree", q, []questionnaire.Answer{overall, {QuestionID: "recommend", Aspect: "overall", Score: i(3)}}, []string{"answers[1].aspect"}},
		{"answered twice", q, []questionnaire.Answer{overall, {QuestionID: "overall", Rating: typesv1.Rating_RATING_UNSATISFIED}}, []string{"answers[1].question_id"}},
		{"choice not offered", hosp, []questionnaire.Answer{overall, {QuestionID: "recovery", Choice: "great"}}, []string{"answers[1].choice"}},
		{"no question named", q, []questionnaire.Answer{overall, {Score: i(3)}}, []string{"answers[1].question_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l invalid.List
			out := questionnaire.Check(tt.q, tt.answers, &l, "answers", true)
			requireFields(t, l.Err(), tt.fields)
			if tt.fields == nil {
				for _, a := range out {
					require.NotEmpty(t, a.QuestionID, "answers are completed with their question")
					require.NotEmpty(t, a.Aspect)
				}
			}
		})
	}
}

func TestNPS(t *testing.T) {
	q := seed(t, questionnaire.SeedAuto)
	nine := int32(9)
	require.Nil(t, questionnaire.NPS(&q, []questionnaire.Answer{{QuestionID: "overall", Rating: 1}}))
	four := int32(4)
	got := questionnaire.NPS(&q, []questionnaire.Answer{{QuestionID: "service_advisor", Score: &four}, {QuestionID: "recommend", Score: &nine}})
	require.NotNil(t, got)
	require.EqualValues(t, 9, *got)
}

// Messages name a question's kind by its short name (enum.Name), as they always did.
func TestKindNamesInMessages(t *testing.T) {
	q := seed(t, questionnaire.SeedAuto)
	var l invalid.List
	questionnaire.Check(q, []questionnaire.Answer{{Aspect: "overall", Rating: typesv1.Rating_RATING_SATISFIED},
		{QuestionID: "recommend", Rating: typesv1.Rating_RATING_SATISFIED}, {QuestionID: "fixed_first_time"}}, &l, "answers", true)
	bad, ok := invalid.As(l.Err())
	require.True(t, ok)
	var rules []string
	for _, v := range bad.Violations {
		rules = append(rules, v.Rule)
	}
	require.Equal(t, []string{
		`question "recommend" is a nps question: answer with score only`,
		`is required: question "recommend" is a nps question`,
		`is required: question "fixed_first_time" is a yes_no question`,
	}, rules)
}
