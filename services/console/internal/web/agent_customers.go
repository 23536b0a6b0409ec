package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"unicode"

	feedbackv1 "github.com/huifang/huifang/proto/huifang/feedback/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"
)

// customerRoutes are finding a customer and the customer's card and
// timeline (agents, leaders, directors).
func (s *Server) customerRoutes() {
	s.mux.HandleFunc("GET /customers", s.page(s.customersPage))
	s.mux.HandleFunc("POST /customers", s.action(s.customersSearch))
	s.mux.HandleFunc("GET /customers/{id}", s.page(s.customerPage))
	s.mux.HandleFunc("POST /customers/{id}/reveal", s.action(s.customerReveal))
	s.mux.HandleFunc("POST /customers/{id}/complaint", s.action(s.customerComplaint))
}

// customerSearch is the search page: the criteria and one page of
// customers, masked.
type customerSearch struct {
	Q, By     string
	Found     []*intakev1.CustomerView
	Searched  bool
	NextToken string
}

// Options are the criteria the search form offers.
func (customerSearch) Options() []string {
	return []string{"auto", "name", "phone", "plate", "vin", "external_id"}
}

// timelinePage is one page of a customer's contact ledger, newest first;
// Err says why it could not be read (the rest of the page stands).
type timelinePage struct {
	// Base is the page the timeline is on (its next page is
	// Base?timeline=NextToken).
	Base      string
	Entries   []*intakev1.TimelineEntry
	NextToken string
	Err       *Problem
}

// timeline reads a page of a customer's timeline, newest first.
func (s *Server) timeline(ctx context.Context, base, customerID, token string) *timelinePage {
	res, err := s.api.Intake.GetCustomerTimeline(ctx, &intakev1.GetCustomerTimelineRequest{CustomerId: customerID, NewestFirst: true,
		PageSize: 20, PageToken: token})
	if err != nil {
		return &timelinePage{Base: base, Err: problemOf(err)}
	}
	return &timelinePage{Base: base, Entries: res.GetEntries(), NextToken: res.GetNextPageToken()}
}

func (s *Server) customersAllowed(w http.ResponseWriter, u *User) bool {
	if !u.Is("agent", "leader", "director") {
		http.Error(w, "only agents, leaders and directors find customers", http.StatusForbidden)
		return false
	}
	return true
}

// customersPage shows the search form; ?q= searches at once (a link from
// elsewhere), though the form posts, so that names and phone digits stay
// out of URLs and logs.
func (s *Server) customersPage(w http.ResponseWriter, r *http.Request, u *User) {
	if !s.customersAllowed(w, u) {
		return
	}
	q := r.URL.Query()
	if q.Get("q") == "" {
		s.render(w, r, u, "customers", customerSearch{By: "auto"})
		return
	}
	s.search(w, r, u, q.Get("q"), q.Get("by"), q.Get("page_token"))
}

func (s *Server) customersSearch(w http.ResponseWriter, r *http.Request, u *User) {
	if !s.customersAllowed(w, u) {
		return
	}
	f := r.PostForm
	s.search(w, r, u, f.Get("q"), f.Get("by"), f.Get("page_token"))
}

func (s *Server) search(w http.ResponseWriter, r *http.Request, u *User, q, by, token string) {
	if by == "" {
		by = "auto"
	}
	d := customerSearch{Q: q, By: by, Searched: true}
	req := searchRequest(q, by)
	req.PageSize, req.PageToken = 20, token
	res, err := s.api.Intake.SearchCustomers(r.Context(), req)
	if err != nil {
		d.Searched = false
		s.fail(w, r, u, "customers", d, err)
		return
	}
	d.Found, d.NextToken = res.GetCustomers(), res.GetNextPageToken()
	s.render(w, r, u, "customers", d)
}

// searchRequest reads what was typed: by "name", "phone", "plate", "vin"
// or "external_id", or "auto": digits (with spaces, dashes, brackets, a
// leading +) are a phone's last digits, 17 letters and digits with one
// digit at least a VIN, anything else a name.
func searchRequest(q, by string) *intakev1.SearchCustomersRequest {
	q = strings.TrimSpace(q)
	req := &intakev1.SearchCustomersRequest{}
	if by == "auto" {
		by = guessBy(q)
	}
	switch by {
	case "phone":
		req.Phone = q
	case "plate":
		req.Plate = q
	case "vin":
		req.Vin = q
	case "external_id":
		req.ExternalId = q
	default:
		req.Name = q
	}
	return req
}

func guessBy(q string) string {
	digits, letters, other := 0, 0, 0
	for _, c := range q {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c < unicode.MaxASCII && unicode.IsLetter(c):
			letters++
		case strings.ContainsRune(" -.()+", c):
		default:
			other++
		}
	}
	switch {
	case digits > 0 && letters == 0 && other == 0:
		return "phone"
	case len(q) == 17 && digits > 0 && letters+digits == 17:
		return "vin"
	}
	return "name"
}

// customerCard is a customer's page: the card (leaders and directors:
// intake's GetCustomer; agents see the search's masked card) and the
// timeline.
type customerCard struct {
	ID       string
	Customer *intakev1.CustomerView
	CardErr  *Problem
	Timeline *timelinePage
	// CanReveal: a leader or director may reveal the contacts, for a
	// purpose (intake RevealContact, audited).
	CanReveal bool
	Revealed  *intakev1.RevealContactResponse
	// Complaint is the form of a complaint the customer makes by phone,
	// letter or in person (feedback CreateComplaint).
	Complaint complaintForm
}

// complaintForm is what the complaint form shows: its request id (made
// when the form is, kept through a retry or a refusal, so that a double
// submit records one complaint), the user's org units, the channels and
// severities, and what was typed.
type complaintForm struct {
	RequestID  string
	Units      []string
	Via        []feedbackv1.ReceivedVia
	Severities []typesv1.Severity
	Form       url.Values
}

func (s *Server) newComplaintForm(u *User, f url.Values) complaintForm {
	id := f.Get("request_id")
	if id == "" {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
	}
	return complaintForm{RequestID: id, Units: u.OrgUnits, Severities: severities, Form: f,
		Via: []feedbackv1.ReceivedVia{feedbackv1.ReceivedVia_RECEIVED_VIA_PHONE, feedbackv1.ReceivedVia_RECEIVED_VIA_LETTER,
			feedbackv1.ReceivedVia_RECEIVED_VIA_EMAIL, feedbackv1.ReceivedVia_RECEIVED_VIA_IN_PERSON, feedbackv1.ReceivedVia_RECEIVED_VIA_WEB}}
}

func (s *Server) customerCardData(r *http.Request, u *User, id string) customerCard {
	d := customerCard{ID: id, CanReveal: u.Is("leader", "director"), Complaint: s.newComplaintForm(u, r.PostForm)}
	if u.Is("leader", "director") {
		c, err := s.api.Intake.GetCustomer(r.Context(), &intakev1.GetCustomerRequest{Id: id})
		if err != nil {
			d.CardErr = problemOf(err)
		} else {
			d.Customer = c.GetView()
			if d.Customer == nil {
				d.Customer = &intakev1.CustomerView{Customer: c.GetCustomer()}
			}
		}
	}
	d.Timeline = s.timeline(r.Context(), "/customers/"+url.PathEscape(id), id, r.URL.Query().Get("timeline"))
	return d
}

func (s *Server) customerPage(w http.ResponseWriter, r *http.Request, u *User) {
	if !s.customersAllowed(w, u) {
		return
	}
	s.render(w, r, u, "customer", s.customerCardData(r, u, r.PathValue("id")))
}

// customerReveal shows a customer's phone and name once, on this response
// only, for the purpose given (intake audits it).
func (s *Server) customerReveal(w http.ResponseWriter, r *http.Request, u *User) {
	if !s.customersAllowed(w, u) {
		return
	}
	id := r.PathValue("id")
	res, err := s.api.Intake.RevealContact(r.Context(), &intakev1.RevealContactRequest{CustomerId: id,
		Fields: []intakev1.ContactField{intakev1.ContactField_CONTACT_FIELD_NAME, intakev1.ContactField_CONTACT_FIELD_PHONE}, Purpose: r.PostForm.Get("purpose")})
	d := s.customerCardData(r, u, id)
	if err != nil {
		s.fail(w, r, u, "customer", d, err)
		return
	}
	d.Revealed = res
	s.render(w, r, u, "customer", d)
}

// customerComplaint records a complaint the customer makes (by phone,
// letter, in person): it joins the closed loop as one a follow-up found.
func (s *Server) customerComplaint(w http.ResponseWriter, r *http.Request, u *User) {
	if !s.customersAllowed(w, u) {
		return
	}
	id, f := r.PathValue("id"), r.PostForm
	res, err := s.api.Feedback.CreateComplaint(r.Context(), &feedbackv1.CreateComplaintRequest{RequestId: f.Get("request_id"), CustomerId: id,
		OrgUnit: f.Get("org_unit"), Category: f.Get("category"), Description: f.Get("description"),
		ReceivedVia: feedbackv1.ReceivedVia(feedbackv1.ReceivedVia_value[f.Get("received_via")]),
		Severity:    typesv1.Severity(typesv1.Severity_value[f.Get("severity")])})
	if err != nil {
		s.fail(w, r, u, "customer", s.customerCardData(r, u, id), err)
		return
	}
	note := "agent.note.complaint"
	if res.GetAttached() {
		note = "agent.note.complaint_attached"
	}
	http.Redirect(w, r, "/customers/"+url.PathEscape(id)+"?note="+note, http.StatusSeeOther)
}
