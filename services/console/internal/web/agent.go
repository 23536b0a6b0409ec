package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

// agentRoutes are the agent's workbench: the next follow-up, the customer
// card and timeline, the questionnaire and script, attempts, appointments,
// the visit record, problems and promises, the queue and today's figures.
func (s *Server) agentRoutes() {
	s.topic("queue", s.watchQueue)
	s.mux.HandleFunc("GET /agent", s.page(s.agentHome))
	s.mux.HandleFunc("GET /agent/queue/part", s.page(s.agentQueuePart))
	s.mux.HandleFunc("POST /agent/presence", s.action(s.agentPresence))
	s.mux.HandleFunc("POST /agent/claim", s.action(s.agentClaim))
	s.mux.HandleFunc("GET /agent/task/{id}", s.page(s.agentTask))
	s.mux.HandleFunc("POST /agent/task/{id}/reveal", s.action(s.agentReveal))
	s.mux.HandleFunc("POST /agent/task/{id}/attempt", s.action(s.agentAttempt))
	s.mux.HandleFunc("POST /agent/task/{id}/appointment", s.action(s.agentAppointment))
	s.mux.HandleFunc("POST /agent/task/{id}/visit", s.action(s.agentVisit))
	s.customerRoutes()
}

// agentHome is what the workbench shows: presence, the queue, today's
// figures.
type agentHome struct {
	Queue   *dispatchv1.AgentQueue
	Figures agentFigures
	// QueueErr and FiguresErr are why a part could not be read (the rest
	// of the page stands).
	QueueErr, FiguresErr *Problem
	Reasons              []string
}

// breakReasons are the break reason codes the workbench offers
// (SetAgentPresence takes any code; these are the documented ones).
var breakReasons = []string{"break", "lunch", "training", "after_call_work", "meeting"}

// agentFigures are an agent's figures of today, from what the services
// let an agent read: its visit records (feedback), its appointments and
// its queue (dispatch).
type agentFigures struct {
	Logged, Unsatisfied, Complaints, Promised, Appointments int
	Held, Waiting                                           int
}

func (s *Server) agentHome(w http.ResponseWriter, r *http.Request, u *User) {
	s.render(w, r, u, "agent", s.agentHomeData(r.Context(), u))
}

func (s *Server) agentHomeData(ctx context.Context, u *User) agentHome {
	h := agentHome{Reasons: breakReasons}
	q, err := s.queueSnapshot(ctx, u)
	if err != nil {
		h.QueueErr = problemOf(err)
	}
	h.Queue = q
	h.Figures, err = s.agentFigures(ctx, u, q)
	if err != nil {
		h.FiguresErr = problemOf(err)
	}
	return h
}

func (s *Server) agentQueuePart(w http.ResponseWriter, r *http.Request, u *User) {
	d := agentHome{}
	q, err := s.queueSnapshot(r.Context(), u)
	if err != nil {
		d.QueueErr = problemOf(err)
	}
	d.Queue = q
	s.fragment(w, r, u, "agent", "queue", d)
}

// queueSnapshot reads the agent's queue: the first message of WatchQueue
// (a snapshot), the stream closed at once.
func (s *Server) queueSnapshot(ctx context.Context, u *User) (*dispatchv1.AgentQueue, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	st, err := s.api.Dispatch.WatchQueue(ctx, &dispatchv1.WatchQueueRequest{AgentId: u.AgentID})
	if err != nil {
		return nil, err
	}
	for {
		m, err := st.Recv()
		if err != nil {
			return nil, err
		}
		if m.GetQueue() != nil {
			return m.GetQueue(), nil
		}
	}
}

// agentFigures counts today's (in the user's zone) visit records of the
// agent, newest first until yesterday, and its appointments of today.
func (s *Server) agentFigures(ctx context.Context, u *User, q *dispatchv1.AgentQueue) (agentFigures, error) {
	var f agentFigures
	if q != nil {
		f.Held, f.Waiting = len(q.GetHeld()), int(q.GetWaiting())
	}
	now := s.now().In(u.Loc)
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, u.Loc)
	token := ""
records:
	for range 20 {
		res, err := s.api.Feedback.ListVisitRecords(ctx, &feedbackv1.ListVisitRecordsRequest{PageSize: 100, PageToken: token})
		if err != nil {
			return f, err
		}
		for _, rec := range res.GetRecords() {
			if rec.GetLoggedAt().AsTime().Before(midnight) {
				break records
			}
			f.Logged++
			for _, a := range rec.GetAnswers() {
				if a.GetRating() == typesv1.Rating_RATING_UNSATISFIED {
					f.Unsatisfied++
					break
				}
			}
			f.Complaints += len(rec.GetComplaintIds())
			f.Promised += len(rec.GetPromisedReplies())
		}
		if token = res.GetNextPageToken(); token == "" {
			break
		}
	}
	token = ""
	for range 20 {
		res, err := s.api.Dispatch.ListAppointments(ctx, &dispatchv1.ListAppointmentsRequest{Day: now.Format(time.DateOnly), TimeZone: u.Loc.String(), PageSize: 200, PageToken: token})
		if err != nil {
			return f, err
		}
		f.Appointments += len(res.GetAppointments())
		if token = res.GetNextPageToken(); token == "" {
			break
		}
	}
	return f, nil
}

// agentPresence sets the agent's own presence.
func (s *Server) agentPresence(w http.ResponseWriter, r *http.Request, u *User) {
	req := &dispatchv1.SetAgentPresenceRequest{}
	switch r.PostForm.Get("presence") {
	case "available":
		req.Presence = dispatchv1.Presence_PRESENCE_AVAILABLE
	case "on_break":
		req.Presence = dispatchv1.Presence_PRESENCE_ON_BREAK
		req.Reason = r.PostForm.Get("reason")
	case "offline":
		req.Presence = dispatchv1.Presence_PRESENCE_OFFLINE
	}
	if _, err := s.api.Dispatch.SetAgentPresence(r.Context(), req); err != nil {
		s.fail(w, r, u, "agent", s.agentHomeData(r.Context(), u), err)
		return
	}
	http.Redirect(w, r, "/agent?note=agent.note.presence", http.StatusSeeOther)
}

// agentClaim takes the next follow-up and opens it; with nothing to take,
// the workbench says so.
func (s *Server) agentClaim(w http.ResponseWriter, r *http.Request, u *User) {
	res, err := s.api.Dispatch.ClaimNextTask(r.Context(), &dispatchv1.ClaimNextTaskRequest{RequestId: r.PostForm.Get("request_id")})
	if err != nil {
		s.fail(w, r, u, "agent", s.agentHomeData(r.Context(), u), err)
		return
	}
	if res.GetTask() == nil {
		http.Redirect(w, r, "/agent?note=agent.note.nothing", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, taskURL(res.GetTask()), http.StatusSeeOther)
}

// agentTaskView is the task page: GetTaskContext's answer, the customer's
// timeline, and what one response adds (a revealed contact).
type agentTaskView struct {
	ID string
	// Lease is the claim's lease token (?lease=, the forms' lease); 0
	// when the page was opened without it: dispatch then checks the
	// holder by the agent alone.
	Lease int64
	// Holder: the user holds the task (its forms are shown); otherwise
	// the page is read only (a leader of its group).
	Holder bool
	Ctx    *dispatchv1.GetTaskContextResponse
	// Timeline is the customer's (newest first, one page).
	Timeline *timelinePage
	// Revealed is the contact RevealTaskContact gave, on its response only.
	Revealed *dispatchv1.RevealTaskContactResponse
	// Form is what the user typed, shown again with a refusal.
	Form         url.Values
	Dispositions []typesv1.Disposition
	Ratings      []typesv1.Rating
	Severities   []typesv1.Severity
	Onsite       bool
	// TimelineToken pages the timeline (?timeline=...).
	TimelineToken string
}

var (
	agentDispositions = []typesv1.Disposition{typesv1.Disposition_DISPOSITION_NO_ANSWER, typesv1.Disposition_DISPOSITION_BUSY,
		typesv1.Disposition_DISPOSITION_CALL_BACK_LATER, typesv1.Disposition_DISPOSITION_WRONG_NUMBER,
		typesv1.Disposition_DISPOSITION_REFUSED, typesv1.Disposition_DISPOSITION_ASKED_TO_STOP, typesv1.Disposition_DISPOSITION_ANSWERED}
	ratings    = []typesv1.Rating{typesv1.Rating_RATING_SATISFIED, typesv1.Rating_RATING_FAIRLY_SATISFIED, typesv1.Rating_RATING_UNSATISFIED}
	severities = []typesv1.Severity{typesv1.Severity_SEVERITY_GENERAL, typesv1.Severity_SEVERITY_URGENT, typesv1.Severity_SEVERITY_MAJOR}
)

// taskURL is a held task's page: the lease token of the claim rides along
// (it is no secret: only the holder's own token makes use of it).
func taskURL(t *dispatchv1.Task) string {
	return fmt.Sprintf("/agent/task/%s?lease=%d", url.PathEscape(t.GetId()), t.GetLeaseToken())
}

// taskView reads the task's context and its customer's timeline.
func (s *Server) taskView(r *http.Request, u *User, id string) (*agentTaskView, error) {
	lease, err := strconv.ParseInt(r.URL.Query().Get("lease"), 10, 64)
	if err != nil {
		lease = formInt(r, "lease")
	}
	c, err := s.api.Dispatch.GetTaskContext(r.Context(), &dispatchv1.GetTaskContextRequest{TaskId: id, LeaseToken: lease})
	if err != nil {
		return nil, err
	}
	v := &agentTaskView{ID: id, Lease: lease, Ctx: c, Dispositions: agentDispositions, Ratings: ratings, Severities: severities,
		Onsite: c.GetTask().GetChannel() == typesv1.Channel_CHANNEL_ONSITE,
		Holder: u.AgentID != "" && c.GetTask().GetStatus() == "claimed" && c.GetTask().GetAgentId() == u.AgentID}
	if cid := c.GetTask().GetCustomer().GetId(); cid != "" {
		v.Timeline = s.timeline(r.Context(), "/agent/task/"+url.PathEscape(id), cid, r.URL.Query().Get("timeline"))
	}
	return v, nil
}

func (s *Server) agentTask(w http.ResponseWriter, r *http.Request, u *User) {
	v, err := s.taskView(r, u, r.PathValue("id"))
	if err != nil {
		s.taskFailed(w, r, u, err)
		return
	}
	s.render(w, r, u, "agent_task", v)
}

// taskFailed shows why a task cannot be opened (not held any more, done,
// not found) on the workbench.
func (s *Server) taskFailed(w http.ResponseWriter, r *http.Request, u *User, err error) {
	s.fail(w, r, u, "agent", s.agentHomeData(r.Context(), u), err)
}

// taskRefused shows the task page again with a refusal (the task read anew,
// the form as typed).
func (s *Server) taskRefused(w http.ResponseWriter, r *http.Request, u *User, err error) {
	v, verr := s.taskView(r, u, r.PathValue("id"))
	if verr != nil {
		s.taskFailed(w, r, u, err)
		return
	}
	v.Form = r.PostForm
	s.fail(w, r, u, "agent_task", v, err)
}

// agentReveal shows the number to dial, once, on this response only; the
// reveal is audited by dispatch and intake.
func (s *Server) agentReveal(w http.ResponseWriter, r *http.Request, u *User) {
	id := r.PathValue("id")
	res, err := s.api.Dispatch.RevealTaskContact(r.Context(), &dispatchv1.RevealTaskContactRequest{TaskId: id,
		LeaseToken: formInt(r, "lease"), Purpose: r.PostForm.Get("purpose")})
	if err != nil {
		s.taskRefused(w, r, u, err)
		return
	}
	v, err := s.taskView(r, u, id)
	if err != nil {
		s.taskFailed(w, r, u, err)
		return
	}
	v.Revealed = res
	s.render(w, r, u, "agent_task", v)
}

// agentAttempt records how a call ended; the task leaves the agent's
// hands (retried later, closed, or done).
func (s *Server) agentAttempt(w http.ResponseWriter, r *http.Request, u *User) {
	d := typesv1.Disposition(typesv1.Disposition_value[r.PostForm.Get("disposition")])
	req := &dispatchv1.RecordAttemptRequest{TaskId: r.PathValue("id"), LeaseToken: formInt(r, "lease"), Disposition: d,
		Note: r.PostForm.Get("note")}
	if cb := r.PostForm.Get("call_back_at"); cb != "" {
		at, err := time.ParseInLocation("2006-01-02T15:04", cb, u.Loc)
		if err != nil {
			s.taskRefused(w, r, u, invalid(FieldProblem{"call_back_at", "must be a date and time"}))
			return
		}
		req.CallBackAt = timestamp(at)
	}
	if _, err := s.api.Dispatch.RecordAttempt(r.Context(), req); err != nil {
		s.taskRefused(w, r, u, err)
		return
	}
	http.Redirect(w, r, "/agent?note=agent.note.attempt", http.StatusSeeOther)
}

// agentAppointment books the on-site visit of an on-site task.
func (s *Server) agentAppointment(w http.ResponseWriter, r *http.Request, u *User) {
	id := r.PathValue("id")
	start, err1 := time.ParseInLocation("2006-01-02T15:04", r.PostForm.Get("starts_at"), u.Loc)
	end, err2 := time.ParseInLocation("2006-01-02T15:04", r.PostForm.Get("ends_at"), u.Loc)
	var bad []FieldProblem
	if err1 != nil {
		bad = append(bad, FieldProblem{"starts_at", "must be a date and time"})
	}
	if err2 != nil {
		bad = append(bad, FieldProblem{"ends_at", "must be a date and time"})
	}
	if len(bad) > 0 {
		s.taskRefused(w, r, u, invalid(bad...))
		return
	}
	if _, err := s.api.Dispatch.BookAppointment(r.Context(), &dispatchv1.BookAppointmentRequest{TaskId: id, LeaseToken: formInt(r, "lease"),
		StartsAt: timestamp(start), EndsAt: timestamp(end), AddressNote: r.PostForm.Get("address_note")}); err != nil {
		s.taskRefused(w, r, u, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/agent/task/%s?lease=%d&note=agent.note.booked", url.PathEscape(id), formInt(r, "lease")), http.StatusSeeOther)
}

// agentVisit logs the visit of an answered call (feedback LogVisit: the
// answers, a problem, a promised reply), then records the answered
// attempt, which closes the task.
func (s *Server) agentVisit(w http.ResponseWriter, r *http.Request, u *User) {
	id := r.PathValue("id")
	req, err := s.visitRequest(r, u)
	if err != nil {
		s.taskRefused(w, r, u, err)
		return
	}
	res, err := s.api.Feedback.LogVisit(r.Context(), req)
	if err != nil {
		s.taskRefused(w, r, u, err)
		return
	}
	note := "agent.note.logged"
	if len(res.GetRecord().GetComplaintIds()) > 0 {
		note = "agent.note.logged_complaint"
	}
	_, err = s.api.Dispatch.RecordAttempt(r.Context(), &dispatchv1.RecordAttemptRequest{TaskId: id, LeaseToken: formInt(r, "lease"),
		Disposition: typesv1.Disposition_DISPOSITION_ANSWERED})
	switch {
	case status.Code(err) == codes.FailedPrecondition:
		// The claim ran out meanwhile: the record stands, the task was
		// not closed by this call.
		note = "agent.note.logged_not_closed"
	case err != nil:
		// The record stands; the attempt could not be recorded: say so.
		s.fail(w, r, u, "agent", s.agentHomeData(r.Context(), u), err)
		return
	}
	http.Redirect(w, r, "/agent?note="+note, http.StatusSeeOther)
}

// visitRequest reads the visit form: an answer per aspect (rating.<aspect>,
// score.<aspect>, yes.<aspect>, choice.<aspect>, text.<aspect>), the
// comments, one problem and one promised reply.
func (s *Server) visitRequest(r *http.Request, u *User) (*feedbackv1.LogVisitRequest, error) {
	f := r.PostForm
	req := &feedbackv1.LogVisitRequest{VisitId: f.Get("visit_id"), Comments: f.Get("comments"),
		QuestionnaireVersion: int32(formInt(r, "questionnaire_version"))}
	var bad []FieldProblem
	answers := map[string]*typesv1.Answer{}
	var order []string
	answer := func(aspect string) *typesv1.Answer {
		if a, ok := answers[aspect]; ok {
			return a
		}
		a := &typesv1.Answer{Aspect: aspect}
		answers[aspect] = a
		order = append(order, aspect)
		return a
	}
	for _, key := range sortedKeys(f) {
		kind, aspect, ok := cutKey(key)
		v := f.Get(key)
		if !ok || v == "" {
			continue
		}
		switch kind {
		case "rating":
			rt, ok := typesv1.Rating_value[v]
			if !ok || rt == 0 {
				bad = append(bad, FieldProblem{key, "must be satisfied, fairly satisfied or unsatisfied"})
				continue
			}
			answer(aspect).Rating = typesv1.Rating(rt)
		case "score":
			var n int32
			if _, err := fmt.Sscan(v, &n); err != nil {
				bad = append(bad, FieldProblem{key, "must be a whole number"})
				continue
			}
			answer(aspect).Score = &n
		case "yes":
			y := v == "yes"
			answer(aspect).Yes = &y
		case "choice":
			answer(aspect).Choice = v
		case "text":
			answer(aspect).Text = v
		}
	}
	for _, a := range order {
		req.Answers = append(req.Answers, answers[a])
	}
	if cat, desc := f.Get("problem.category"), f.Get("problem.description"); cat != "" || desc != "" {
		req.Problems = append(req.Problems, &typesv1.Problem{Category: cat, Description: desc,
			Severity: typesv1.Severity(typesv1.Severity_value[f.Get("problem.severity")])})
	}
	if q := f.Get("promise.question"); q != "" {
		p := &feedbackv1.PromisedReply{Question: q}
		if at := f.Get("promise.at"); at != "" {
			t, err := time.ParseInLocation("2006-01-02T15:04", at, u.Loc)
			if err != nil {
				bad = append(bad, FieldProblem{"promise.at", "must be a date and time"})
			} else {
				p.PromisedAt = timestamp(t)
			}
		}
		req.PromisedReplies = append(req.PromisedReplies, p)
	}
	if len(bad) > 0 {
		return nil, invalid(bad...)
	}
	return req, nil
}
