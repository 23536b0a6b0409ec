package web

import (
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	dispatchv1 "github.com/huifang/huifang/proto/huifang/dispatch/v1"
)

// deskRoutes are the leader's and director's desk: the group queue and
// wallboard, deadlines, reassigning, complaints and their closed loop, QA.
func (s *Server) deskRoutes() {
	s.topic("wallboard", s.watchWallboard)
	s.mux.HandleFunc("GET /desk", s.page(s.desk))
	s.mux.HandleFunc("GET /desk/wallboard/part", s.page(s.deskPart("wallboard")))
	s.mux.HandleFunc("GET /desk/deadlines/part", s.page(s.deskPart("deadlines")))
	s.mux.HandleFunc("POST /desk/reassign", s.action(s.reassign))
	s.mux.HandleFunc("POST /desk/offline", s.action(s.setOffline))
	s.complaintRoutes()
	s.qaRoutes()
}

// deskRoles may open the desk.
var deskRoles = []string{"leader", "director"}

// deskView is what the desk shows: the wallboard of the user's groups (or
// of one), the tasks near or past their deadline and the agents to move
// them to.
type deskView struct {
	Group string
	// Args are the live parts' arguments (group=...); WallSrc and DeadSrc
	// the parts' addresses, NextURL the next page of deadline tasks.
	Args                      string
	WallSrc, DeadSrc, NextURL template.URL
	Board                     *dispatchv1.Wallboard
	// Rows are Board's groups with their oldest waits, Total the sum.
	Rows  []boardRow
	Total boardRow
	// Agents are the agents of the user's groups, by id, for names and the
	// reassign targets.
	Agents    []*dispatchv1.Agent
	AgentName map[string]string
	Deadlines []*dispatchv1.DeadlineTask
	// Next is the next page of deadline tasks; Page the current token.
	Next, Page string
	// Reassign is the form of a refused reassignment, to show again.
	Reassign reassignForm
}

// boardRow is one group of the wallboard with its oldest wait.
type boardRow struct {
	G    *dispatchv1.GroupBoard
	Wait hm
}

type reassignForm struct{ TaskID, To, Reason string }

// hm is a duration in whole hours and minutes, for the catalog's
// "desk.hm" format.
type hm struct {
	Set  bool
	H, M int
}

func hmOf(d *durationpb.Duration) hm {
	if d == nil {
		return hm{}
	}
	return hmOfDuration(d.AsDuration())
}

func hmOfDuration(d time.Duration) hm {
	if d < 0 {
		d = 0
	}
	m := int(d / time.Minute)
	return hm{Set: true, H: m / 60, M: m % 60}
}

// posted is what a refused form posted, shown again in the form.
type posted struct{ Form url.Values }

// Field is the value the refused form posted for name ("" for none).
func (p posted) Field(name string) string { return p.Form.Get(name) }

// forbidden shows page with a refusal for a user whose roles may not open it.
func (s *Server) forbidden(w http.ResponseWriter, r *http.Request, u *User, page string) {
	w.WriteHeader(http.StatusForbidden)
	s.renderErr(w, r, u, page, nil, &Problem{Message: s.pages.catalogs[s.langOf(r, u)]["desk.refused"]})
}

func (s *Server) langOf(r *http.Request, u *User) string {
	if u != nil && u.Lang != "" {
		return u.Lang
	}
	return langOf("", r)
}

// deskData reads the desk of group (every group of the user when empty).
func (s *Server) deskData(r *http.Request, u *User, group string) (*deskView, error) {
	ctx := r.Context()
	v := &deskView{Group: group, Page: r.URL.Query().Get("page"), AgentName: map[string]string{}}
	q := url.Values{}
	if group != "" {
		q.Set("group", group)
	}
	v.Args = q.Encode()
	v.WallSrc = template.URL("/desk/wallboard/part?" + v.Args)
	v.DeadSrc = template.URL("/desk/deadlines/part?" + v.Args)
	board, err := s.api.Dispatch.GetWallboard(ctx, &dispatchv1.GetWallboardRequest{Group: group, TimeZone: u.Loc.String()})
	if err != nil {
		return v, err
	}
	v.Board = board.GetWallboard()
	for _, g := range v.Board.GetGroups() {
		v.Rows = append(v.Rows, boardRow{G: g, Wait: hmOf(g.GetOldestWaiting())})
	}
	v.Total = boardRow{G: v.Board.GetTotal(), Wait: hmOf(v.Board.GetTotal().GetOldestWaiting())}
	dl, err := s.api.Dispatch.ListDeadlineTasks(ctx, &dispatchv1.ListDeadlineTasksRequest{Group: group, PageSize: 50, PageToken: v.Page})
	if err != nil {
		return v, err
	}
	v.Deadlines, v.Next = dl.GetTasks(), dl.GetNextPageToken()
	if v.Next != "" {
		q.Set("page", v.Next)
		v.NextURL = template.URL("/desk?" + q.Encode())
	}
	agents, err := s.api.Dispatch.ListAgents(ctx, &dispatchv1.ListAgentsRequest{Group: group, PageSize: 500})
	if err != nil {
		return v, err
	}
	for _, a := range agents.GetAgents() {
		if a.Active != nil && !a.GetActive() {
			continue
		}
		v.Agents = append(v.Agents, a)
		v.AgentName[a.GetId()] = a.GetName()
	}
	slices.SortFunc(v.Agents, func(a, b *dispatchv1.Agent) int { return strings.Compare(a.GetId(), b.GetId()) })
	return v, nil
}

// desk is the wallboard and the deadline list, live.
func (s *Server) desk(w http.ResponseWriter, r *http.Request, u *User) {
	if !u.Is(deskRoles...) {
		s.forbidden(w, r, u, "desk")
		return
	}
	v, err := s.deskData(r, u, r.URL.Query().Get("group"))
	if err != nil {
		s.fail(w, r, u, "desk", v, err)
		return
	}
	s.render(w, r, u, "desk", v)
}

// deskPart is one live part of the desk, reloaded when the wallboard's
// watch reports a change.
func (s *Server) deskPart(part string) handler {
	return func(w http.ResponseWriter, r *http.Request, u *User) {
		if !u.Is(deskRoles...) {
			http.Error(w, "refused: the desk is for leaders and directors", http.StatusForbidden)
			return
		}
		v, err := s.deskData(r, u, r.URL.Query().Get("group"))
		if err != nil {
			http.Error(w, problemOf(err).Message, codeOf(err))
			return
		}
		s.fragment(w, r, u, "desk", part, v)
	}
}

// deskBack is the desk of the group a form came from, with a note.
func deskBack(group, note string) string {
	q := url.Values{"note": {note}}
	if group != "" {
		q.Set("group", group)
	}
	return "/desk?" + q.Encode()
}

// reassign moves a task to another agent (ReassignTask; the service takes
// the leader from the token).
func (s *Server) reassign(w http.ResponseWriter, r *http.Request, u *User) {
	group := r.PostForm.Get("group")
	f := reassignForm{TaskID: r.PostForm.Get("task_id"), To: r.PostForm.Get("to_agent_id"), Reason: strings.TrimSpace(r.PostForm.Get("reason"))}
	req := &dispatchv1.ReassignTaskRequest{TaskId: f.TaskID, ToAgentId: f.To, Reason: f.Reason}
	if u.Is("director") {
		// Dispatch fills a leader's leader_id from its token but lets a
		// director name any leader, so a director names itself.
		req.LeaderId = u.AgentID
	}
	_, err := s.api.Dispatch.ReassignTask(r.Context(), req)
	if err != nil {
		v, _ := s.deskData(r, u, group)
		v.Reassign = f
		s.fail(w, r, u, "desk", v, err)
		return
	}
	http.Redirect(w, r, deskBack(group, "desk.reassigned"), http.StatusSeeOther)
}

// setOffline sets an agent who left without logging off offline: the one
// presence a leader may set for someone else.
func (s *Server) setOffline(w http.ResponseWriter, r *http.Request, u *User) {
	group := r.PostForm.Get("group")
	_, err := s.api.Dispatch.SetAgentPresence(r.Context(), &dispatchv1.SetAgentPresenceRequest{AgentId: r.PostForm.Get("agent_id"),
		Presence: dispatchv1.Presence_PRESENCE_OFFLINE})
	if err != nil {
		v, _ := s.deskData(r, u, group)
		s.fail(w, r, u, "desk", v, err)
		return
	}
	http.Redirect(w, r, deskBack(group, "desk.offline.done"), http.StatusSeeOther)
}

// fieldError is a refusal of the console's own reading of a form, shown
// like a service's: InvalidArgument naming the field.
func fieldError(field, desc string) error {
	st := status.New(codes.InvalidArgument, field+": "+desc)
	d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: desc}}})
	if err != nil {
		return st.Err()
	}
	return d.Err()
}
