package web

import (
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
)

// qaRoles may open quality review.
var qaRoles = []string{"qa_reviewer", "leader", "director"}

// qaChecklist is what SubmitReview scores (feedback.proto's
// ChecklistScore.item, seed 004), each 0 to qaMaxScore.
var qaChecklist = []string{"identity_confirmed", "purpose_stated", "script_followed", "answers_complete"}

const qaMaxScore = 5

func (s *Server) qaRoutes() {
	s.mux.HandleFunc("GET /qa", s.page(s.qa))
	s.mux.HandleFunc("GET /qa/{record}", s.page(s.qaRecord))
	s.mux.HandleFunc("POST /qa/{record}/review", s.action(s.qaReview))
}

// qaView is the sample of an agent's records of a period and the reviews.
type qaView struct {
	Agent, From, To string
	Size            int
	ScoreBelow      int
	Sampled         bool
	Population      int32
	Sample          []*feedbackv1.VisitRecord
	Reviews         []*feedbackv1.Review
	NextURL         template.URL
	// SampleErr is a refusal of the sample, shown beside it.
	SampleErr *Problem
}

// qa draws the sample (SampleForReview: reproducible, the same request
// draws the same records) when an agent is named, and lists the reviews.
func (s *Server) qa(w http.ResponseWriter, r *http.Request, u *User) {
	if !u.Is(qaRoles...) {
		s.forbidden(w, r, u, "qa")
		return
	}
	q := r.URL.Query()
	today := s.now().In(u.Loc)
	v := &qaView{Agent: strings.TrimSpace(q.Get("agent")), From: q.Get("from"), To: q.Get("to")}
	if v.From == "" {
		v.From = today.AddDate(0, 0, -6).Format("2006-01-02")
	}
	if v.To == "" {
		v.To = today.AddDate(0, 0, 1).Format("2006-01-02")
	}
	v.Size, _ = strconv.Atoi(q.Get("size"))
	v.ScoreBelow, _ = strconv.Atoi(q.Get("score_below"))
	ctx := r.Context()
	if v.Agent != "" {
		v.Sampled = true
		req := &feedbackv1.SampleForReviewRequest{AgentId: v.Agent, Size: int32(v.Size)}
		if t, err := time.ParseInLocation("2006-01-02", v.From, u.Loc); err == nil {
			req.PeriodStart = timestamppb.New(t)
		}
		if t, err := time.ParseInLocation("2006-01-02", v.To, u.Loc); err == nil {
			req.PeriodEnd = timestamppb.New(t)
		}
		resp, err := s.api.Feedback.SampleForReview(ctx, req)
		if err != nil {
			v.SampleErr = problemOf(err)
		} else {
			v.Sample, v.Population = resp.GetRecords(), resp.GetPopulation()
		}
	}
	lr := &feedbackv1.ListReviewsRequest{AgentId: v.Agent, ScoreBelow: int32(v.ScoreBelow), PageSize: 50, PageToken: q.Get("page")}
	resp, err := s.api.Feedback.ListReviews(ctx, lr)
	if err != nil {
		s.fail(w, r, u, "qa", v, err)
		return
	}
	v.Reviews = resp.GetReviews()
	if next := resp.GetNextPageToken(); next != "" {
		nq := url.Values{"page": {next}, "from": {v.From}, "to": {v.To}}
		if v.Agent != "" {
			nq.Set("agent", v.Agent)
		}
		if v.ScoreBelow > 0 {
			nq.Set("score_below", strconv.Itoa(v.ScoreBelow))
		}
		v.NextURL = template.URL("/qa?" + nq.Encode())
	}
	s.render(w, r, u, "qa", v)
}

// qaRecordView is one record, its reviews and the review form.
type qaRecordView struct {
	ID        string
	Record    *feedbackv1.VisitRecord
	Amended   bool
	Reviews   []*feedbackv1.Review
	Checklist []string
	Scores    []int
	CanReview bool
	posted
}

func (s *Server) qaRecordData(r *http.Request, u *User, id string) (*qaRecordView, error) {
	v := &qaRecordView{ID: id, Checklist: qaChecklist, CanReview: u.Is("qa_reviewer")}
	for i := qaMaxScore; i >= 0; i-- {
		v.Scores = append(v.Scores, i)
	}
	rec, err := s.api.Feedback.GetVisitRecord(r.Context(), &feedbackv1.GetVisitRecordRequest{Id: id})
	if err != nil {
		return v, err
	}
	v.Record, v.Amended = rec.GetCurrent(), len(rec.GetAmendments()) > 0
	if v.Record == nil {
		v.Record = rec.GetRecord()
	}
	reviews, err := s.api.Feedback.ListReviews(r.Context(), &feedbackv1.ListReviewsRequest{RecordId: v.Record.GetId(), PageSize: 50})
	if err != nil {
		return v, err
	}
	v.Reviews = reviews.GetReviews()
	return v, nil
}

// qaRecord shows a record (masked as the service returns it) with the
// checklist to score.
func (s *Server) qaRecord(w http.ResponseWriter, r *http.Request, u *User) {
	if !u.Is(qaRoles...) {
		s.forbidden(w, r, u, "qa_record")
		return
	}
	v, err := s.qaRecordData(r, u, r.PathValue("record"))
	if err != nil {
		s.fail(w, r, u, "qa_record", v, err)
		return
	}
	s.render(w, r, u, "qa_record", v)
}

// qaReview submits a review: one score per checklist item (the reviewer
// comes from the token).
func (s *Server) qaReview(w http.ResponseWriter, r *http.Request, u *User) {
	id, f := r.PathValue("record"), r.PostForm
	req := &feedbackv1.SubmitReviewRequest{RecordId: id, Comments: f.Get("comments")}
	for _, item := range qaChecklist {
		raw := strings.TrimSpace(f.Get("score_" + item))
		if raw == "" {
			continue // the service names the item not scored
		}
		n, err := strconv.Atoi(raw)
		if err != nil {
			s.qaRefused(w, r, u, id, fieldError("scores."+item, "must be a whole number 0–5"))
			return
		}
		req.Scores = append(req.Scores, &feedbackv1.ChecklistScore{Item: item, Score: int32(n), Comment: f.Get("comment_" + item)})
	}
	if _, err := s.api.Feedback.SubmitReview(r.Context(), req); err != nil {
		s.qaRefused(w, r, u, id, err)
		return
	}
	http.Redirect(w, r, "/qa/"+url.PathEscape(id)+"?note=desk.qa.reviewed", http.StatusSeeOther)
}

func (s *Server) qaRefused(w http.ResponseWriter, r *http.Request, u *User, id string, err error) {
	v, _ := s.qaRecordData(r, u, id)
	v.Form = r.PostForm
	s.fail(w, r, u, "qa_record", v, err)
}
