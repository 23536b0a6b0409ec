package web

import (
	"context"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
)

// complaintRoles may open the complaints.
var complaintRoles = []string{"leader", "director", "department_owner"}

// complaintStatuses are the statuses of the loop, in its order.
var complaintStatuses = []string{"open", "acknowledged", "resolved", "closed"}

// ageBuckets are the columns of the complaints' age summary: under a day,
// under 3 days, under 7 days, older.
var ageBuckets = []time.Duration{24 * time.Hour, 72 * time.Hour, 7 * 24 * time.Hour}

func (s *Server) complaintRoutes() {
	s.topic("complaint", s.watchComplaint)
	s.mux.HandleFunc("GET /complaints", s.page(s.complaints))
	s.mux.HandleFunc("GET /complaints/{id}", s.page(s.complaint))
	s.mux.HandleFunc("GET /complaints/{id}/part", s.page(s.complaintPart))
	s.mux.HandleFunc("POST /complaints/{id}/{act}", s.action(s.complaintAct))
}

// complaintsView is one page of complaints with their filters.
type complaintsView struct {
	Status, Department string
	Statuses           []string
	Rows               []complaintRow
	// Summary counts the page's complaints still with the department
	// (open or acknowledged) by department and age bucket.
	Summary []ageSummary
	NextURL template.URL
	Page    string
}

type complaintRow struct {
	C       *feedbackv1.Complaint
	Age     hm
	Days    int
	Overdue bool
}

type ageSummary struct {
	Department string
	// Buckets follow ageBuckets, the last one older than all.
	Buckets []int
	Total   int
}

// complaints lists the complaints the user may see, newest first, by
// status and department, with how old each is.
func (s *Server) complaints(w http.ResponseWriter, r *http.Request, u *User) {
	if !u.Is(complaintRoles...) {
		s.forbidden(w, r, u, "complaints")
		return
	}
	q := r.URL.Query()
	v := &complaintsView{Status: q.Get("status"), Department: strings.TrimSpace(q.Get("department")), Statuses: complaintStatuses, Page: q.Get("page")}
	resp, err := s.api.Feedback.ListComplaints(r.Context(), &feedbackv1.ListComplaintsRequest{PageSize: 50, PageToken: v.Page,
		Status: v.Status, Department: v.Department})
	if err != nil {
		s.fail(w, r, u, "complaints", v, err)
		return
	}
	now := s.now()
	byDept := map[string]*ageSummary{}
	for _, c := range resp.GetComplaints() {
		age := now.Sub(c.GetCreatedAt().AsTime())
		row := complaintRow{C: c, Age: hmOfDuration(age), Days: int(age / (24 * time.Hour)), Overdue: overdue(c, now)}
		v.Rows = append(v.Rows, row)
		if c.GetStatus() != "open" && c.GetStatus() != "acknowledged" {
			continue
		}
		sum, ok := byDept[c.GetDepartment()]
		if !ok {
			sum = &ageSummary{Department: c.GetDepartment(), Buckets: make([]int, len(ageBuckets)+1)}
			byDept[c.GetDepartment()] = sum
		}
		i := slices.IndexFunc(ageBuckets, func(b time.Duration) bool { return age < b })
		if i < 0 {
			i = len(ageBuckets)
		}
		sum.Buckets[i]++
		sum.Total++
	}
	for _, d := range sortedKeys(byDept) {
		v.Summary = append(v.Summary, *byDept[d])
	}
	if next := resp.GetNextPageToken(); next != "" {
		nq := url.Values{"page": {next}}
		if v.Status != "" {
			nq.Set("status", v.Status)
		}
		if v.Department != "" {
			nq.Set("department", v.Department)
		}
		v.NextURL = template.URL("/complaints?" + nq.Encode())
	}
	s.render(w, r, u, "complaints", v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// overdue tells whether a complaint's deadline passed while its
// department had it.
func overdue(c *feedbackv1.Complaint, now time.Time) bool {
	return (c.GetStatus() == "open" || c.GetStatus() == "acknowledged") && c.GetDeadline() != nil && c.GetDeadline().AsTime().Before(now)
}

// complaintView is one complaint, its history and plan, and the actions of
// the closed loop the user may take now.
type complaintView struct {
	ID        string
	Found     bool
	Src       template.URL
	C         *feedbackv1.Complaint
	History   []*feedbackv1.ComplaintStep
	Plan      *feedbackv1.ImprovementPlan
	Overdue   bool
	Age       hm
	NoFollow  bool
	CanAck    bool
	CanSolve  bool
	CanReopen bool
	CanClose  bool
	CanPlan   bool
	// MeasureRows number the rows of the improvement plan's form.
	MeasureRows []int
	posted
}

func (s *Server) complaintData(ctx context.Context, u *User, id string) (*complaintView, error) {
	v := &complaintView{ID: id, MeasureRows: []int{1, 2}, Src: template.URL("/complaints/" + url.PathEscape(id) + "/part")}
	resp, err := s.api.Feedback.GetComplaint(ctx, &feedbackv1.GetComplaintRequest{Id: id})
	if err != nil {
		return v, err
	}
	s.fillComplaint(v, u, resp)
	return v, nil
}

func (s *Server) fillComplaint(v *complaintView, u *User, resp *feedbackv1.GetComplaintResponse) {
	c := resp.GetComplaint()
	now := s.now()
	v.Found = c != nil
	v.C, v.History, v.Plan = c, resp.GetHistory(), resp.GetImprovementPlan()
	v.Overdue = overdue(c, now)
	v.Age = hmOfDuration(now.Sub(c.GetCreatedAt().AsTime()))
	v.NoFollow = c.GetAnonymous() || c.GetWrittenReplyOnly()
	handles := u.Is("department_owner", "director")
	st := c.GetStatus()
	v.CanAck = handles && st == "open"
	v.CanSolve = handles && (st == "open" || st == "acknowledged")
	v.CanReopen = u.Is(complaintRoles...) && st == "resolved"
	v.CanClose = u.Is(complaintRoles...) && st != "closed"
	v.CanPlan = u.Is(complaintRoles...) && st != "closed"
}

// complaint shows one complaint; its live part follows WatchComplaint.
func (s *Server) complaint(w http.ResponseWriter, r *http.Request, u *User) {
	if !u.Is(complaintRoles...) {
		s.forbidden(w, r, u, "complaint")
		return
	}
	v, err := s.complaintData(r.Context(), u, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, u, "complaint", v, err)
		return
	}
	s.render(w, r, u, "complaint", v)
}

// complaintPart is the complaint's live part: its state and history.
func (s *Server) complaintPart(w http.ResponseWriter, r *http.Request, u *User) {
	if !u.Is(complaintRoles...) {
		http.Error(w, "refused: complaints are for department owners, leaders and directors", http.StatusForbidden)
		return
	}
	v, err := s.complaintData(r.Context(), u, r.PathValue("id"))
	if err != nil {
		http.Error(w, problemOf(err).Message, codeOf(err))
		return
	}
	s.fragment(w, r, u, "complaint", "state", v)
}

// complaintAct takes one step of the closed loop: acknowledge, resolve,
// reopen (the resolution did not hold: one level up), close, or set the
// improvement plan; the service checks the caller's role and scope.
func (s *Server) complaintAct(w http.ResponseWriter, r *http.Request, u *User) {
	id, f := r.PathValue("id"), r.PostForm
	ctx := r.Context()
	var err error
	note := ""
	switch r.PathValue("act") {
	case "acknowledge":
		_, err = s.api.Feedback.AcknowledgeComplaint(ctx, &feedbackv1.AcknowledgeComplaintRequest{ComplaintId: id})
		note = "desk.cpl.acknowledged"
	case "resolve":
		_, err = s.api.Feedback.ResolveComplaint(ctx, &feedbackv1.ResolveComplaintRequest{ComplaintId: id,
			RootCause: f.Get("root_cause"), Action: f.Get("action"), WrittenReply: f.Get("written_reply")})
		note = "desk.cpl.resolved"
	case "reopen":
		_, err = s.api.Feedback.ReopenComplaint(ctx, &feedbackv1.ReopenComplaintRequest{ComplaintId: id, Reason: f.Get("reason")})
		note = "desk.cpl.reopened"
	case "close":
		_, err = s.api.Feedback.CloseComplaint(ctx, &feedbackv1.CloseComplaintRequest{ComplaintId: id, Reason: f.Get("reason")})
		note = "desk.cpl.closed"
	case "plan":
		var measures []*feedbackv1.ImprovementMeasure
		measures, err = planMeasures(f, u.Loc)
		if err == nil {
			_, err = s.api.Feedback.SetImprovementPlan(ctx, &feedbackv1.SetImprovementPlanRequest{ComplaintId: id, Measures: measures})
		}
		note = "desk.cpl.planned"
	case "complete":
		_, err = s.api.Feedback.CompleteImprovementMeasure(ctx, &feedbackv1.CompleteImprovementMeasureRequest{ComplaintId: id,
			MeasureId: f.Get("measure_id"), Note: f.Get("note")})
		note = "desk.cpl.completed"
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		v, _ := s.complaintData(ctx, u, id)
		v.Form = f
		s.fail(w, r, u, "complaint", v, err)
		return
	}
	http.Redirect(w, r, "/complaints/"+url.PathEscape(id)+"?note="+note, http.StatusSeeOther)
}

// planMeasures reads the plan form's rows (measure_text, measure_owner and
// measure_due, a date in the user's zone); rows without text are skipped.
func planMeasures(f url.Values, loc *time.Location) ([]*feedbackv1.ImprovementMeasure, error) {
	texts, owners, dues := f["measure_text"], f["measure_owner"], f["measure_due"]
	var out []*feedbackv1.ImprovementMeasure
	for i, text := range texts {
		if strings.TrimSpace(text) == "" {
			continue
		}
		m := &feedbackv1.ImprovementMeasure{Text: text}
		if i < len(owners) {
			m.Owner = owners[i]
		}
		if i < len(dues) && strings.TrimSpace(dues[i]) != "" {
			d, err := time.ParseInLocation("2006-01-02", strings.TrimSpace(dues[i]), loc)
			if err != nil {
				return nil, fieldError("measures.due_at", "must be a date (YYYY-MM-DD)")
			}
			m.DueAt = timestamppb.New(d.Add(24*time.Hour - time.Second))
		}
		out = append(out, m)
	}
	return out, nil
}

// watchComplaint follows one complaint (?id=...).
func (s *Server) watchComplaint(ctx context.Context, r *http.Request, _ *User, cursor string) (func() (update, error), error) {
	st, err := s.api.Feedback.WatchComplaint(ctx, &feedbackv1.WatchComplaintRequest{Id: r.URL.Query().Get("id"), Cursor: cursor})
	if err != nil {
		return nil, err
	}
	return func() (update, error) { return st.Recv() }, nil
}
