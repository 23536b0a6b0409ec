package web

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// invalid is the console's own refusal of a form it cannot turn into a
// request (a date that does not parse): an InvalidArgument with its field
// violations, shown as the services' refusals are.
func invalid(fields ...FieldProblem) error {
	br := &errdetails.BadRequest{}
	names := make([]string, 0, len(fields))
	for _, f := range fields {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: f.Field, Description: f.Description})
		names = append(names, f.Field+": "+f.Description)
	}
	st := status.New(codes.InvalidArgument, "invalid input: "+strings.Join(names, "; "))
	if d, err := st.WithDetails(br); err == nil {
		st = d
	}
	return st.Err()
}

// formInt is a whole number of the posted form; 0 when absent or bad.
func formInt(r *http.Request, name string) int64 {
	n, _ := strconv.ParseInt(r.PostForm.Get(name), 10, 64)
	return n
}

func timestamp(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// cutKey splits an answer's field name: "rating.overall" is the rating of
// the aspect overall.
func cutKey(key string) (kind, aspect string, ok bool) {
	kind, aspect, ok = strings.Cut(key, ".")
	switch kind {
	case "rating", "score", "yes", "choice", "text":
		return kind, aspect, ok && aspect != ""
	}
	return "", "", false
}
