package web

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

// policyRoutes are the policy desk: list, edit, simulate, submit for
// approval; the director approves.
func (s *Server) policyRoutes() {
	s.mux.HandleFunc("GET /policies", s.page(s.policyList))
	s.mux.HandleFunc("POST /policy-approval", s.action(s.policyApproval))
	s.mux.HandleFunc("GET /policies/{id}", s.page(s.policyView))
	s.mux.HandleFunc("POST /policies/{id}", s.action(s.policySave))
	s.mux.HandleFunc("POST /policies/{id}/simulate", s.action(s.policySimulate))
	s.mux.HandleFunc("POST /policies/{id}/submit", s.action(s.policySubmit))
	s.mux.HandleFunc("GET /policy-changes/{id}", s.page(s.policyChangeView))
	s.mux.HandleFunc("POST /policy-changes/{id}/approve", s.action(s.policyChangeApprove))
	s.mux.HandleFunc("POST /policy-changes/{id}/reject", s.action(s.policyChangeReject))
}

// policyDeskRoles may open the policy desk: the tenant admin edits,
// simulates and proposes; the director proposes and approves.
var policyDeskRoles = []string{"tenant_admin", "director"}

// policyListData is the list of policies and the changes waiting for a
// decision.
type policyListData struct {
	Policies []*schedulerv1.Policy
	Next     string
	Approval *schedulerv1.PolicyApproval
	Pending  []*schedulerv1.PolicyChange
	Decided  []*schedulerv1.PolicyChange
}

func (s *Server) policyForbidden(w http.ResponseWriter, r *http.Request, u *User, page string, data any) bool {
	if u.Is(policyDeskRoles...) {
		return false
	}
	s.fail(w, r, u, page, data, status.Error(codes.PermissionDenied, s.figuresText(r, u, "policy.forbidden")))
	return true
}

// policyList lists the tenant's policies (a page at a time), the approval
// setting and the proposals.
func (s *Server) policyList(w http.ResponseWriter, r *http.Request, u *User) {
	d := &policyListData{}
	if s.policyForbidden(w, r, u, "policies", d) {
		return
	}
	ctx := r.Context()
	list, err := s.api.Scheduler.ListPolicies(ctx, &schedulerv1.ListPoliciesRequest{PageSize: 50, PageToken: r.URL.Query().Get("page")})
	if err != nil {
		s.fail(w, r, u, "policies", d, err)
		return
	}
	d.Policies, d.Next = list.GetPolicies(), list.GetNextPageToken()
	if a, err := s.api.Scheduler.GetPolicyApproval(ctx, &schedulerv1.GetPolicyApprovalRequest{}); err == nil {
		d.Approval = a.GetApproval()
	} else {
		s.fail(w, r, u, "policies", d, err)
		return
	}
	pending, err := s.api.Scheduler.ListPolicyChanges(ctx, &schedulerv1.ListPolicyChangesRequest{State: "proposed", PageSize: 50})
	if err != nil {
		s.fail(w, r, u, "policies", d, err)
		return
	}
	d.Pending = pending.GetChanges()
	decided, err := s.api.Scheduler.ListPolicyChanges(ctx, &schedulerv1.ListPolicyChangesRequest{PageSize: 20})
	if err != nil {
		s.fail(w, r, u, "policies", d, err)
		return
	}
	for _, c := range decided.GetChanges() {
		if c.GetState() != "proposed" {
			d.Decided = append(d.Decided, c)
		}
	}
	s.render(w, r, u, "policies", d)
}

// policyApproval turns the tenant's "policy changes need approval" on or
// off (the scheduler says who may turn it off).
func (s *Server) policyApproval(w http.ResponseWriter, r *http.Request, u *User) {
	required := r.PostForm.Get("required") == "true"
	if _, err := s.api.Scheduler.SetPolicyApproval(r.Context(), &schedulerv1.SetPolicyApprovalRequest{Required: required}); err != nil {
		s.fail(w, r, u, "policies", &policyListData{}, err)
		return
	}
	note := "policy.approval.off"
	if required {
		note = "policy.approval.on"
	}
	http.Redirect(w, r, "/policies?note="+note, http.StatusSeeOther)
}

// policyStepForm is one step of the edit form, as typed.
type policyStepForm struct {
	Offset, Window, Channel, SampleRate, Group string
}

// policyForm is the edit form: the common fields of a policy (the others
// kept as the stored version has them) and the simulation's load.
type policyForm struct {
	Name, SourceRule                                             string
	ServiceTypes, OrgUnits, Tiers, ProductCategories, Severities string
	OncePerCustomer                                              bool
	Steps                                                        []policyStepForm
	Reason                                                       string
	// Load is "synthetic" (PerDay services a day for Days days) or
	// "history" (the tenant's services of the last Days days).
	Load, PerDay, Days string
}

// policyData is the policy page: the stored version, the form, and a
// simulation's answer.
type policyData struct {
	Policy   *schedulerv1.Policy
	Form     policyForm
	Approval bool
	Channels []string
	// Invalid are the field violations by field (policy.steps[0].offset).
	Invalid map[string]string
	Sim     *policySim
	// CanEdit: not a built-in; CanWrite: the user may save and simulate
	// (the scheduler lets a tenant admin, not a director: a director
	// proposes and approves).
	CanEdit, CanWrite bool
	// The form's fields laid out: labels in the user's language, values,
	// violations.
	General, Trigger, Load []policyField
	Reason                 policyField
	StepRows               []policyStepRow
}

// policyField is one input of the form.
type policyField struct {
	ID, Label, Value, Problem string
}

// policyStepRow is one step's inputs.
type policyStepRow struct {
	Index                             int
	Offset, Window, SampleRate, Group policyField
	Channel                           policyField
}

// policyLayout lays the form's fields out for the page.
func (s *Server) policyLayout(r *http.Request, u *User, d *policyData) {
	f := d.Form
	field := func(id, label, value, violation string) policyField {
		return policyField{ID: id, Label: s.figuresText(r, u, label), Value: value, Problem: d.Invalid[violation]}
	}
	d.General = []policyField{field("name", "policy.name", f.Name, "policy.name"), field("source_rule", "policy.source_rule", f.SourceRule, "policy.source_rule")}
	d.Trigger = []policyField{
		field("service_types", "policy.service_types", f.ServiceTypes, "policy.trigger.service_types"),
		field("org_units", "policy.org_units", f.OrgUnits, "policy.trigger.org_units"),
		field("tiers", "policy.tiers", f.Tiers, "policy.trigger.tiers"),
		field("product_categories", "policy.product_categories", f.ProductCategories, "policy.trigger.product_categories"),
		field("severities", "policy.severities", f.Severities, "policy.trigger.severities"),
	}
	d.Load = []policyField{field("per_day", "policy.load.per_day", f.PerDay, "per_day"), field("days", "policy.load.days", f.Days, "days")}
	d.Reason = field("reason", "policy.reason", f.Reason, "reason")
	d.StepRows = nil
	for i, st := range f.Steps {
		in, v := fmt.Sprintf("steps[%d].", i), fmt.Sprintf("policy.steps[%d].", i)
		d.StepRows = append(d.StepRows, policyStepRow{Index: i,
			Offset:     field(in+"offset", "policy.step.offset", st.Offset, v+"offset"),
			Window:     field(in+"window", "policy.step.window", st.Window, v+"window"),
			SampleRate: field(in+"sample_rate", "policy.step.sample_rate", st.SampleRate, v+"sample_rate"),
			Group:      field(in+"group", "policy.step.group", st.Group, v+"group"),
			Channel:    field(in+"channel", "policy.step.channel", st.Channel, v+"channel"),
		})
	}
}

// policySim is a simulation drawn: the load per day and per group.
type policySim struct {
	Result          *schedulerv1.SimulatePolicyResponse
	PerDay, PerGrp  barChart
	Channels, Group []policyCount
}

// policyCount is one count of a simulation, by name.
type policyCount struct {
	Name  string
	Count int32
}

// policyChannels are the channels a step may use.
func policyChannels() []string {
	var out []string
	for i := int32(1); ; i++ {
		n, ok := typesv1.Channel_name[i]
		if !ok {
			return out
		}
		out = append(out, n)
	}
}

// policyDuration writes a duration as the form takes it: 3d, 1w, 36h,
// 90m, 0s.
func policyDuration(d *durationpb.Duration) string {
	if d == nil {
		return ""
	}
	v := d.AsDuration()
	switch {
	case v == 0:
		return "0s"
	case v%(7*24*time.Hour) == 0:
		return strconv.FormatInt(int64(v/(7*24*time.Hour)), 10) + "w"
	case v%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(v/(24*time.Hour)), 10) + "d"
	case v%time.Hour == 0:
		return strconv.FormatInt(int64(v/time.Hour), 10) + "h"
	case v%time.Minute == 0:
		return strconv.FormatInt(int64(v/time.Minute), 10) + "m"
	}
	return v.String()
}

// policyParseDuration reads a duration as policyDuration writes it, or as
// Go does (1h30m); "" is none.
func policyParseDuration(s string) (*durationpb.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	neg := strings.HasPrefix(s, "-")
	body := strings.TrimPrefix(s, "-")
	for suffix, unit := range map[string]time.Duration{"w": 7 * 24 * time.Hour, "d": 24 * time.Hour} {
		if n, ok := strings.CutSuffix(body, suffix); ok {
			v, err := strconv.ParseInt(n, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("not a duration")
			}
			d := time.Duration(v) * unit
			if neg {
				d = -d
			}
			return durationpb.New(d), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return nil, fmt.Errorf("not a duration")
	}
	return durationpb.New(d), nil
}

func policySplit(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '，' || r == ' ' || r == '\n' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// policyFormOf is the form of a stored policy, with the default load.
func policyFormOf(p *schedulerv1.Policy) policyForm {
	t := p.GetTrigger()
	f := policyForm{Name: p.GetName(), SourceRule: p.GetSourceRule(),
		ServiceTypes: strings.Join(t.GetServiceTypes(), ", "), OrgUnits: strings.Join(t.GetOrgUnits(), ", "),
		Tiers: strings.Join(t.GetTiers(), ", "), ProductCategories: strings.Join(t.GetProductCategories(), ", "),
		Severities: strings.Join(t.GetSeverities(), ", "), OncePerCustomer: t.GetOncePerCustomer(),
		Load: "synthetic", PerDay: "20", Days: "14"}
	for _, st := range p.GetSteps() {
		sf := policyStepForm{Offset: policyDuration(st.GetOffset()), Window: policyDuration(st.GetWindow()), Channel: st.GetChannel().String(), Group: st.GetGroup()}
		if st.SampleRate != nil {
			sf.SampleRate = strconv.FormatFloat(st.GetSampleRate(), 'f', -1, 64)
		}
		f.Steps = append(f.Steps, sf)
	}
	return f
}

// policyFormFrom reads the posted form over the stored policy's steps.
func policyFormFrom(r *http.Request, stored *schedulerv1.Policy) policyForm {
	g := func(k string) string { return strings.TrimSpace(r.PostForm.Get(k)) }
	f := policyForm{Name: g("name"), SourceRule: g("source_rule"), ServiceTypes: g("service_types"), OrgUnits: g("org_units"),
		Tiers: g("tiers"), ProductCategories: g("product_categories"), Severities: g("severities"),
		OncePerCustomer: g("once_per_customer") == "on", Reason: g("reason"), Load: g("load"), PerDay: g("per_day"), Days: g("days")}
	for i := range stored.GetSteps() {
		p := fmt.Sprintf("steps[%d].", i)
		f.Steps = append(f.Steps, policyStepForm{Offset: g(p + "offset"), Window: g(p + "window"), Channel: g(p + "channel"), SampleRate: g(p + "sample_rate"), Group: g(p + "group")})
	}
	if f.Load != "history" {
		f.Load = "synthetic"
	}
	return f
}

// policyInvalid is an InvalidArgument refusal with field violations, as
// the services answer one.
func policyInvalid(v []*errdetails.BadRequest_FieldViolation) error {
	st, err := status.New(codes.InvalidArgument, "invalid policy").WithDetails(&errdetails.BadRequest{FieldViolations: v})
	if err != nil {
		return status.Error(codes.InvalidArgument, "invalid policy")
	}
	return st.Err()
}

// policyDraft is the stored policy with the form's fields: the policy the
// form asks for. A field the console cannot read (a duration, a rate) is a
// field violation named as the scheduler names it.
func policyDraft(stored *schedulerv1.Policy, f policyForm) (*schedulerv1.Policy, error) {
	p := proto.Clone(stored).(*schedulerv1.Policy)
	p.Name, p.SourceRule = f.Name, f.SourceRule
	if p.Trigger == nil {
		p.Trigger = &schedulerv1.Trigger{}
	}
	p.Trigger.ServiceTypes, p.Trigger.OrgUnits, p.Trigger.Tiers = policySplit(f.ServiceTypes), policySplit(f.OrgUnits), policySplit(f.Tiers)
	p.Trigger.ProductCategories, p.Trigger.Severities, p.Trigger.OncePerCustomer = policySplit(f.ProductCategories), policySplit(f.Severities), f.OncePerCustomer
	var bad []*errdetails.BadRequest_FieldViolation
	for i, sf := range f.Steps {
		if i >= len(p.Steps) {
			break
		}
		st := p.Steps[i]
		name := fmt.Sprintf("policy.steps[%d].", i)
		if d, err := policyParseDuration(sf.Offset); err != nil {
			bad = append(bad, &errdetails.BadRequest_FieldViolation{Field: name + "offset", Description: "must be a duration such as 0s, 36h, 3d or 1w"})
		} else {
			st.Offset = d
		}
		if d, err := policyParseDuration(sf.Window); err != nil {
			bad = append(bad, &errdetails.BadRequest_FieldViolation{Field: name + "window", Description: "must be a duration such as 48h, 3d or 1w"})
		} else {
			st.Window = d
		}
		if c, ok := typesv1.Channel_value[sf.Channel]; ok {
			st.Channel = typesv1.Channel(c)
		} else {
			bad = append(bad, &errdetails.BadRequest_FieldViolation{Field: name + "channel", Description: "must be one of " + strings.Join(policyChannels(), ", ")})
		}
		st.Group = sf.Group
		if sf.SampleRate == "" {
			st.SampleRate = nil
		} else if v, err := strconv.ParseFloat(sf.SampleRate, 64); err != nil {
			bad = append(bad, &errdetails.BadRequest_FieldViolation{Field: name + "sample_rate", Description: "must be a number above 0 and at most 1, or empty for all"})
		} else {
			st.SampleRate = &v
		}
	}
	if len(bad) > 0 {
		return nil, policyInvalid(bad)
	}
	return p, nil
}

// policyRun is the load a simulation replays, as SimulatePolicy and
// ProposePolicyChange take it: a synthetic load, or the tenant's services
// completed in [From, To).
type policyRun struct {
	Synthetic *schedulerv1.SyntheticLoad
	From, To  *timestamppb.Timestamp
}

// policyLoad is the simulation's load of the form: a synthetic load of the
// policy's service types and org units, or the last days' services (whole
// UTC days up to the end of today).
func policyLoad(f policyForm, p *schedulerv1.Policy, now time.Time) (policyRun, error) {
	var bad []*errdetails.BadRequest_FieldViolation
	days, err := strconv.Atoi(f.Days)
	if err != nil || days < 1 || days > 366 {
		bad = append(bad, &errdetails.BadRequest_FieldViolation{Field: "days", Description: "must be a whole number of days from 1 to 366"})
	}
	perDay, err := strconv.Atoi(f.PerDay)
	if f.Load != "history" && (err != nil || perDay < 1 || perDay > 10000) {
		bad = append(bad, &errdetails.BadRequest_FieldViolation{Field: "per_day", Description: "must be a whole number of services a day from 1 to 10000"})
	}
	if len(bad) > 0 {
		return policyRun{}, policyInvalid(bad)
	}
	if f.Load == "history" {
		to := now.UTC().Truncate(24*time.Hour).AddDate(0, 0, 1)
		return policyRun{From: timestamppb.New(to.AddDate(0, 0, -days)), To: timestamppb.New(to)}, nil
	}
	t := p.GetTrigger()
	return policyRun{Synthetic: &schedulerv1.SyntheticLoad{ServicesPerDay: int32(perDay), Days: int32(days), ServiceTypes: t.GetServiceTypes(),
		Tiers: t.GetTiers(), OrgUnits: t.GetOrgUnits(), Severities: t.GetSeverities()}}, nil
}

// policyPage reads the stored policy and the approval setting for the
// policy page.
func (s *Server) policyPage(r *http.Request, u *User) (*policyData, error) {
	d := &policyData{Channels: policyChannels(), Invalid: map[string]string{}}
	if !u.Is(policyDeskRoles...) {
		return d, status.Error(codes.PermissionDenied, s.figuresText(r, u, "policy.forbidden"))
	}
	resp, err := s.api.Scheduler.GetPolicy(r.Context(), &schedulerv1.GetPolicyRequest{PolicyId: r.PathValue("id")})
	if err != nil {
		return d, err
	}
	d.Policy = resp.GetPolicy()
	d.Form = policyFormOf(d.Policy)
	d.CanEdit = !d.Policy.GetBuiltin()
	d.CanWrite = u.Is("tenant_admin")
	a, err := s.api.Scheduler.GetPolicyApproval(r.Context(), &schedulerv1.GetPolicyApprovalRequest{})
	if err != nil {
		return d, err
	}
	d.Approval = a.GetApproval().GetRequired()
	return d, nil
}

// policyFail shows the policy page again with a refusal, each field
// violation beside its field.
func (s *Server) policyFail(w http.ResponseWriter, r *http.Request, u *User, d *policyData, err error) {
	if p := problemOf(err); p != nil {
		for _, f := range p.Fields {
			// A proposal names the fields under its change (update.policy...).
			d.Invalid[strings.TrimPrefix(f.Field, "update.")] = f.Description
		}
	}
	s.policyLayout(r, u, d)
	s.fail(w, r, u, "policy", d, err)
}

func (s *Server) policyView(w http.ResponseWriter, r *http.Request, u *User) {
	d, err := s.policyPage(r, u)
	if err != nil {
		s.policyFail(w, r, u, d, err)
		return
	}
	s.policyLayout(r, u, d)
	s.render(w, r, u, "policy", d)
}

// policyEdit reads the page, the posted draft and, withLoad, the load to
// simulate it over.
func (s *Server) policyEdit(r *http.Request, u *User, withLoad bool) (*policyData, *schedulerv1.Policy, policyRun, error) {
	d, err := s.policyPage(r, u)
	if err != nil {
		return d, nil, policyRun{}, err
	}
	d.Form = policyFormFrom(r, d.Policy)
	draft, err := policyDraft(d.Policy, d.Form)
	if err != nil || !withLoad {
		return d, draft, policyRun{}, err
	}
	load, err := policyLoad(d.Form, draft, s.now())
	return d, draft, load, err
}

// policySave stores the draft as the policy's next version (UpdatePolicy),
// when the tenant's changes need no approval.
func (s *Server) policySave(w http.ResponseWriter, r *http.Request, u *User) {
	d, draft, _, err := s.policyEdit(r, u, false)
	if err == nil {
		_, err = s.api.Scheduler.UpdatePolicy(r.Context(), &schedulerv1.UpdatePolicyRequest{PolicyId: d.Policy.GetId(), Policy: draft})
	}
	if err != nil {
		s.policyFail(w, r, u, d, err)
		return
	}
	http.Redirect(w, r, "/policies/"+url.PathEscape(d.Policy.GetId())+"?note=policy.saved", http.StatusSeeOther)
}

// policySimulate runs the draft over the form's load (SimulatePolicy:
// nothing is stored) and draws the visits it would create per day and per
// group.
func (s *Server) policySimulate(w http.ResponseWriter, r *http.Request, u *User) {
	d, draft, load, err := s.policyEdit(r, u, true)
	var res *schedulerv1.SimulatePolicyResponse
	if err == nil {
		res, err = s.api.Scheduler.SimulatePolicy(r.Context(), &schedulerv1.SimulatePolicyRequest{Policy: draft, Synthetic: load.Synthetic, From: load.From, To: load.To})
	}
	if err != nil {
		s.policyFail(w, r, u, d, err)
		return
	}
	d.Sim = s.policySimOf(r, u, res)
	s.policyLayout(r, u, d)
	s.render(w, r, u, "policy", d)
}

// policySimOf draws a simulation's answer.
func (s *Server) policySimOf(r *http.Request, u *User, res *schedulerv1.SimulatePolicyResponse) *policySim {
	sim := &policySim{Result: res,
		PerDay: barChart{ID: "simulation-per-day", Title: s.figuresText(r, u, "policy.sim.per_day")},
		PerGrp: barChart{ID: "simulation-per-group", Title: s.figuresText(r, u, "policy.sim.per_group")}}
	for _, dc := range res.GetPerDay() {
		label := dc.GetDate()
		if len(label) == len("2006-01-02") {
			label = label[5:]
		}
		sim.PerDay.Bars = append(sim.PerDay.Bars, chartPoint{Label: label, Value: float64(dc.GetVisits()), Title: fmt.Sprintf("%s: %d", dc.GetDate(), dc.GetVisits())})
	}
	sim.Group = policyCounts(res.GetPerGroup(), s.figuresText(r, u, "policy.sim.any_group"))
	for _, g := range sim.Group {
		sim.PerGrp.Bars = append(sim.PerGrp.Bars, chartPoint{Label: g.Name, Value: float64(g.Count)})
	}
	sim.Channels = policyCounts(res.GetPerChannel(), "")
	return sim
}

// policyCounts sorts a map of counts by name; an empty name is none.
func policyCounts(m map[string]int32, none string) []policyCount {
	out := make([]policyCount, 0, len(m))
	for k, v := range m {
		if k == "" {
			k = none
		}
		out = append(out, policyCount{Name: k, Count: v})
	}
	slices.SortFunc(out, func(a, b policyCount) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// policySubmit proposes the draft as the policy's next version
// (ProposePolicyChange), with the reason and the form's load for its dry
// run; a director other than the proposer approves it.
func (s *Server) policySubmit(w http.ResponseWriter, r *http.Request, u *User) {
	d, draft, load, err := s.policyEdit(r, u, true)
	var resp *schedulerv1.ProposePolicyChangeResponse
	if err == nil {
		resp, err = s.api.Scheduler.ProposePolicyChange(r.Context(), &schedulerv1.ProposePolicyChangeRequest{
			Change: &schedulerv1.ProposePolicyChangeRequest_Update{Update: &schedulerv1.UpdatePolicyRequest{PolicyId: d.Policy.GetId(), Policy: draft}},
			Reason: d.Form.Reason, Synthetic: load.Synthetic, From: load.From, To: load.To})
	}
	if err != nil {
		s.policyFail(w, r, u, d, err)
		return
	}
	http.Redirect(w, r, "/policy-changes/"+url.PathEscape(resp.GetChange().GetId())+"?note=policy.submitted", http.StatusSeeOther)
}
