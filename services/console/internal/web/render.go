package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// pages are the parsed templates: each page file of templates/ with the
// layout and the partials, and the message catalogs.
type pages struct {
	byName   map[string]*template.Template
	catalogs map[string]map[string]string
}

// Langs are the languages of the console, the first the default.
var langs = []string{"zh", "en"}

func loadPages(fsys fs.FS) (*pages, error) {
	p := &pages{byName: map[string]*template.Template{}, catalogs: map[string]map[string]string{}}
	for _, lang := range langs {
		files, err := fs.Glob(fsys, "i18n/"+lang+"/*.json")
		if err != nil || len(files) == 0 {
			return nil, fmt.Errorf("web: no catalog for %s", lang)
		}
		m := map[string]string{}
		for _, f := range files {
			b, err := fs.ReadFile(fsys, f)
			if err != nil {
				return nil, fmt.Errorf("web: catalog %s: %w", f, err)
			}
			part := map[string]string{}
			if err := json.Unmarshal(b, &part); err != nil {
				return nil, fmt.Errorf("web: catalog %s: %w", f, err)
			}
			for k, v := range part {
				if _, dup := m[k]; dup {
					return nil, fmt.Errorf("web: catalog %s: key %q is also in another file", f, k)
				}
				m[k] = v
			}
		}
		p.catalogs[lang] = m
	}
	for k := range p.catalogs["en"] {
		if _, ok := p.catalogs["zh"][k]; !ok {
			return nil, fmt.Errorf("web: catalog zh lacks %q", k)
		}
	}
	for k := range p.catalogs["zh"] {
		if _, ok := p.catalogs["en"][k]; !ok {
			return nil, fmt.Errorf("web: catalog en lacks %q", k)
		}
	}
	files, err := fs.Glob(fsys, "templates/*.html")
	if err != nil {
		return nil, err
	}
	partials, err := fs.Glob(fsys, "templates/partials/*.html")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" {
			continue
		}
		t := template.New(name).Funcs(funcs(nil))
		if _, err := t.ParseFS(fsys, append([]string{"templates/layout.html", f}, partials...)...); err != nil {
			return nil, fmt.Errorf("web: template %s: %w", f, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

// view is what every template gets: the user (nil before sign-in), the
// page's data, and the request's message.
type view struct {
	User *User
	Lang string
	Path string
	Data any
	// Note is a message key of the catalog to show (?note=...), Err an
	// error to show.
	Note string
	Err  *Problem
}

// Problem is a refusal or failure shown on a page.
type Problem struct {
	Message string
	Fields  []FieldProblem
}

// FieldProblem is a field violation of an InvalidArgument refusal.
type FieldProblem struct{ Field, Description string }

// render writes the page name with data in the user's language.
func (s *Server) render(w http.ResponseWriter, r *http.Request, u *User, name string, data any) {
	s.renderErr(w, r, u, name, data, nil)
}

func (s *Server) renderErr(w http.ResponseWriter, r *http.Request, u *User, name string, data any, problem *Problem) {
	s.execute(w, r, u, name, "layout", data, problem)
}

// fragment writes one named template of a page (a part a live page
// reloads) without the layout.
func (s *Server) fragment(w http.ResponseWriter, r *http.Request, u *User, page, part string, data any) {
	s.execute(w, r, u, page, part, data, nil)
}

func (s *Server) execute(w http.ResponseWriter, r *http.Request, u *User, page, part string, data any, problem *Problem) {
	t, ok := s.pages.byName[page]
	if !ok {
		s.log.Error("no such page template", "page", page)
		http.Error(w, "page not found", http.StatusInternalServerError)
		return
	}
	lang := langOf("", r)
	if u != nil && u.Lang != "" {
		lang = u.Lang
	}
	var loc *time.Location
	if u != nil {
		loc = u.Loc
	}
	v := view{User: u, Lang: lang, Path: r.URL.Path, Data: data, Note: r.URL.Query().Get("note"), Err: problem}
	clone, err := t.Clone()
	var buf bytes.Buffer
	if err == nil {
		clone.Funcs(funcs(&env{cat: s.pages.catalogs[lang], lang: lang, loc: loc}))
		err = clone.ExecuteTemplate(&buf, part, v)
	}
	if err != nil {
		s.log.Error("rendering a page failed", "page", page, "part", part, "err", err)
		http.Error(w, "the page could not be shown", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = buf.WriteTo(w)
}

// env is what the template functions of one request read.
type env struct {
	cat  map[string]string
	lang string
	loc  *time.Location
}

func funcs(e *env) template.FuncMap {
	if e == nil {
		e = &env{cat: map[string]string{}, loc: time.UTC}
	}
	if e.loc == nil {
		e.loc = time.UTC
	}
	return template.FuncMap{
		// t translates a message key, formatting args into it.
		"t": func(key string, args ...any) string {
			msg, ok := e.cat[key]
			if !ok {
				return key
			}
			if len(args) > 0 {
				return fmt.Sprintf(msg, args...)
			}
			return msg
		},
		// when formats a time (time.Time or a protobuf timestamp) in the
		// user's time zone; empty for none.
		"when": func(v any) string {
			t, ok := asTime(v)
			if !ok {
				return ""
			}
			return t.In(e.loc).Format("2006-01-02 15:04")
		},
		"day": func(v any) string {
			t, ok := asTime(v)
			if !ok {
				return ""
			}
			return t.In(e.loc).Format("2006-01-02")
		},
		"zone": func() string { return e.loc.String() },
		"lang": func() string { return e.lang },
		"pct":  func(f float64) string { return fmt.Sprintf("%.1f%%", f*100) },
	}
}

func asTime(v any) (time.Time, bool) {
	switch t := v.(type) {
	case time.Time:
		return t, !t.IsZero()
	case *timestamppb.Timestamp:
		if t == nil {
			return time.Time{}, false
		}
		return t.AsTime(), true
	}
	return time.Time{}, false
}

// langOf picks the language: the ID token's locale, else the browser's.
func langOf(locale string, r *http.Request) string {
	for _, l := range []string{locale, r.Header.Get("Accept-Language")} {
		l = strings.ToLower(strings.TrimSpace(l))
		switch {
		case strings.HasPrefix(l, "zh"):
			return "zh"
		case strings.HasPrefix(l, "en"):
			return "en"
		}
	}
	return langs[0]
}

// problemOf turns a service's refusal into what the page shows: the
// status message and, for InvalidArgument, the field violations.
func problemOf(err error) *Problem {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return &Problem{Message: err.Error()}
	}
	p := &Problem{Message: st.Message()}
	if st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded {
		p.Message = "unavailable: " + st.Message()
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				p.Fields = append(p.Fields, FieldProblem{Field: v.GetField(), Description: v.GetDescription()})
			}
		}
	}
	return p
}

// codeOf is the HTTP status of a service's refusal.
func codeOf(err error) int {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unavailable, codes.DeadlineExceeded:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// fail shows a page again with a service's refusal; an expired token
// sends the user to sign in again.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, u *User, page string, data any, err error) {
	if status.Code(err) == codes.Unauthenticated {
		s.signInAgain(w, r)
		return
	}
	if codeOf(err) >= 500 {
		s.log.Warn("a service call failed", "page", page, "code", status.Code(err).String(), "err", status.Convert(err).Message())
	}
	w.WriteHeader(codeOf(err))
	s.renderErr(w, r, u, page, data, problemOf(err))
}
