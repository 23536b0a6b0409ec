package web

import (
	"net/http"
	"time"
)

// home is the start page: what the user's roles open.
func (s *Server) home(w http.ResponseWriter, r *http.Request, u *User) {
	s.render(w, r, u, "home", nil)
}

// settings changes the user's language and time zone (kept in the
// session).
func (s *Server) settings(w http.ResponseWriter, r *http.Request, u *User) {
	sess := u.Session
	if l := r.PostForm.Get("lang"); l == "zh" || l == "en" {
		sess.Lang = l
	}
	if z := r.PostForm.Get("zone"); z != "" {
		if _, err := time.LoadLocation(z); err != nil {
			http.Error(w, "zone: not a time zone of the IANA database (e.g. Asia/Shanghai)", http.StatusBadRequest)
			return
		}
		sess.Zone = z
	}
	if err := s.sessions.Save(w, sess); err != nil {
		http.Error(w, "the settings could not be kept", http.StatusInternalServerError)
		return
	}
	back := localPath(r.PostForm.Get("next"))
	if back == "" {
		back = "/"
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}
