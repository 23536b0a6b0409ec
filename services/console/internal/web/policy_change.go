package web

import (
	"net/http"
	"net/url"

	schedulerv1 "github.com/huifang/huifang/proto/huifang/scheduler/v1"
)

// policyChangeData is one proposal: the change, its dry runs drawn, and
// what became of it.
type policyChangeData struct {
	Change *schedulerv1.PolicyChange
	// Kind is create, update, activate, deactivate or load_pack; Policy
	// the policy it creates or updates (as a form, read-only).
	Kind     string
	PolicyID string
	Policy   *policyForm
	DryRuns  []policyDryRun
	// Mine: the user proposed it (a director does not approve its own).
	Mine      bool
	CanDecide bool
}

// policyDryRun is one policy's dry run of a proposal, drawn.
type policyDryRun struct {
	PolicyID, Name string
	Sim            *policySim
}

// policyChangeView shows a proposal; a director other than its proposer
// approves or rejects it there.
func (s *Server) policyChangeView(w http.ResponseWriter, r *http.Request, u *User) {
	d := &policyChangeData{}
	if s.policyForbidden(w, r, u, "policy_change", d) {
		return
	}
	resp, err := s.api.Scheduler.GetPolicyChange(r.Context(), &schedulerv1.GetPolicyChangeRequest{ChangeId: r.PathValue("id")})
	if err != nil {
		s.fail(w, r, u, "policy_change", d, err)
		return
	}
	c := resp.GetChange()
	d.Change = c
	switch ch := c.GetChange().(type) {
	case *schedulerv1.PolicyChange_Create:
		d.Kind = "create"
		f := policyFormOf(ch.Create.GetPolicy())
		d.Policy = &f
	case *schedulerv1.PolicyChange_Update:
		d.Kind, d.PolicyID = "update", ch.Update.GetPolicyId()
		f := policyFormOf(ch.Update.GetPolicy())
		d.Policy = &f
	case *schedulerv1.PolicyChange_Activate:
		d.Kind, d.PolicyID = "activate", ch.Activate.GetPolicyId()
	case *schedulerv1.PolicyChange_Deactivate:
		d.Kind, d.PolicyID = "deactivate", ch.Deactivate.GetPolicyId()
	case *schedulerv1.PolicyChange_LoadPack:
		d.Kind = "load_pack"
	}
	for _, dr := range c.GetDryRuns() {
		d.DryRuns = append(d.DryRuns, policyDryRun{PolicyID: dr.GetPolicyId(), Name: dr.GetPolicyName(), Sim: s.policySimOf(r, u, dr.GetResult())})
	}
	for i := range d.DryRuns {
		// Each dry run's charts need their own test ids.
		d.DryRuns[i].Sim.PerDay.ID += "-" + url.PathEscape(d.DryRuns[i].Name)
		d.DryRuns[i].Sim.PerGrp.ID += "-" + url.PathEscape(d.DryRuns[i].Name)
	}
	d.Mine = c.GetProposedBy() == u.Subject
	d.CanDecide = c.GetState() == "proposed" && u.Is("director")
	s.render(w, r, u, "policy_change", d)
}

// policyChangeApprove applies a proposal (ApprovePolicyChange: a director
// other than the proposer; the scheduler refuses otherwise).
func (s *Server) policyChangeApprove(w http.ResponseWriter, r *http.Request, u *User) {
	id := r.PathValue("id")
	if _, err := s.api.Scheduler.ApprovePolicyChange(r.Context(), &schedulerv1.ApprovePolicyChangeRequest{ChangeId: id, Note: r.PostForm.Get("note")}); err != nil {
		s.policyChangeRefused(w, r, u, id, err)
		return
	}
	http.Redirect(w, r, "/policy-changes/"+url.PathEscape(id)+"?note=policy.approved", http.StatusSeeOther)
}

// policyChangeReject closes a proposal with a reason.
func (s *Server) policyChangeReject(w http.ResponseWriter, r *http.Request, u *User) {
	id := r.PathValue("id")
	if _, err := s.api.Scheduler.RejectPolicyChange(r.Context(), &schedulerv1.RejectPolicyChangeRequest{ChangeId: id, Reason: r.PostForm.Get("reason")}); err != nil {
		s.policyChangeRefused(w, r, u, id, err)
		return
	}
	http.Redirect(w, r, "/policy-changes/"+url.PathEscape(id)+"?note=policy.rejected", http.StatusSeeOther)
}

// policyChangeRefused shows the proposal again with the scheduler's
// refusal.
func (s *Server) policyChangeRefused(w http.ResponseWriter, r *http.Request, u *User, id string, err error) {
	d := &policyChangeData{}
	if resp, gerr := s.api.Scheduler.GetPolicyChange(r.Context(), &schedulerv1.GetPolicyChangeRequest{ChangeId: id}); gerr == nil {
		d.Change = resp.GetChange()
		d.Mine = d.Change.GetProposedBy() == u.Subject
		d.CanDecide = d.Change.GetState() == "proposed" && u.Is("director")
	}
	s.fail(w, r, u, "policy_change", d, err)
}
