package ingest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/contact"
	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/services/intake/internal/archive"
)

func TestContentType(t *testing.T) {
	for _, tc := range []struct{ ct, data, want string }{
		{"application/json; charset=utf-8", "x", "application/json"},
		{" Application/Protobuf ", "{", "application/protobuf"},
		{"", "  {\"a\":1}", "application/json"},
		{"", "\x0a\x01a", "application/protobuf"},
		{"text/csv", "a,b", "text/csv"},
	} {
		require.Equal(t, tc.want, ContentType(tc.ct, []byte(tc.data)), tc)
	}
}

// The order of inputs is their source time: source_updated_at, else completed_at.
func TestSourceTimeAndCustomerInput(t *testing.T) {
	done := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	ev := &eventsv1.ServiceCompleted{
		CompletedAt: timestamppb.New(done), StaffId: "s-2", OrgUnit: "sh-01",
		Customer: &typesv1.Customer{ExternalId: "c-1", Name: "王芳", OwnerIds: []string{"s-1"}},
	}
	require.Equal(t, done, SourceTime(ev))
	in := CustomerInput(ev)
	require.Equal(t, done, in.SourceUpdatedAt)
	require.Equal(t, []string{"s-1", "s-2"}, in.Owners, "seed 002: the staff who served becomes an owner")
	require.Equal(t, "sh-01", in.OrgUnit, "the service's org unit fills the customer's")
	require.Equal(t, []string{"s-1"}, ev.Customer.OwnerIds, "the event is left as it came")

	ev.SourceUpdatedAt = timestamppb.New(done.Add(time.Hour))
	ev.Customer.OrgUnit = "bj-02"
	require.Equal(t, done.Add(time.Hour), SourceTime(ev))
	require.Equal(t, "bj-02", CustomerInput(ev).OrgUnit)
}

func TestComplaintRef(t *testing.T) {
	require.Equal(t, "", ComplaintRef(&eventsv1.ServiceCompleted{}))
	require.Equal(t, "T-77", ComplaintRef(&eventsv1.ServiceCompleted{Complaint: &typesv1.Complaint{Reference: "T-77"}}))
}

// A customer's own windows keep today's rule: 0 <= start < end <= 1440, no
// wrap over midnight (pkg/contact's windows may wrap; a customer's may not).
func TestCustomerWindows(t *testing.T) {
	for _, tc := range []struct {
		w    contact.Window
		fine bool
	}{
		{contact.Window{Start: 600, End: 690}, true},
		{contact.Window{Start: 0, End: 1440}, true},
		{contact.Window{Start: 700, End: 600}, false},
		{contact.Window{Start: 1260, End: 480}, false},
		{contact.Window{Start: 600, End: 600}, false},
		{contact.Window{Start: -1, End: 600}, false},
		{contact.Window{Start: 0, End: 1441}, false},
	} {
		var l invalid.List
		ValidatePreferences(&l, "preferences", &archive.Preferences{Windows: []contact.Window{tc.w}})
		if tc.fine {
			require.NoError(t, l.Err(), tc.w)
			continue
		}
		bad, ok := invalid.As(l.Err())
		require.True(t, ok, tc.w)
		require.Equal(t, []invalid.Violation{{Field: "preferences.windows[0]", Rule: "must satisfy 0 <= start_minute < end_minute <= 1440"}}, bad.Violations)
	}
}

func TestImportRecord(t *testing.T) {
	var l invalid.List
	c := &typesv1.Customer{ExternalId: " c-1 ", Phone: "+8613800000001"}
	require.Equal(t, now, ImportRecord(&l, 0, c, nil, now), "no source time: the import time")
	require.NoError(t, l.Err())
	require.Equal(t, "c-1", c.ExternalId, "normalized")
	at := now.Add(-time.Hour)
	require.Equal(t, at, ImportRecord(&l, 0, c, timestamppb.New(at), now))
	require.NoError(t, l.Err())

	ImportRecord(&l, 3, nil, timestamppb.New(now.Add(2*time.Hour)), now)
	require.Equal(t, []string{"records[3].customer", "records[3].source_updated_at"}, fields(t, l.Err()))
}

// A refused input is replayed once: fixed, or as it is when it opens and decodes.
func TestRejectedReplay(t *testing.T) {
	r := &Rejected{ID: "r-1", Tenant: "default", ContentType: "application/json", Payload: []byte(contractJSON)}
	ev, err := r.Replay(nil)
	require.NoError(t, err)
	require.Equal(t, "e-1", ev.SourceEventId)
	fixed := &eventsv1.ServiceCompleted{SourceEventId: "e-2"}
	ev, err = r.Replay(fixed)
	require.NoError(t, err)
	require.Same(t, fixed, ev)

	gone := &Rejected{ID: "r-2", Tenant: "default", OpenErr: errors.New(`unknown key id "k9"`)}
	_, err = gone.Replay(nil)
	require.ErrorContains(t, err, "k9")
	_, err = gone.Replay(fixed)
	require.NoError(t, err, "a fixed event replaces what no longer opens")

	r.Replayed("svc-1", now)
	require.Equal(t, now, *r.ReplayedAt)
	_, err = r.Replay(fixed)
	require.ErrorIs(t, err, ErrAlreadyReplayed)
	require.ErrorContains(t, err, "svc-1")
}

// A replay keeps the tenant of the input refused: a blank tenant_id becomes
// it, another one is refused, naming the field.
func TestRejectedReplayKeepsTenant(t *testing.T) {
	payload := func(tenant string) []byte {
		return []byte(strings.Replace(contractJSON, `{`, `{"tenant_id":"`+tenant+`",`, 1))
	}
	for _, tc := range []struct {
		name    string
		payload []byte
		fixed   *eventsv1.ServiceCompleted
		want    string // the tenant replayed, or the field refused
	}{
		{name: "payload of the tenant", payload: payload("acme"), want: "acme"},
		{name: "payload without a tenant", payload: []byte(contractJSON), want: "acme"},
		{name: "payload of another tenant", payload: payload("globex"), want: "payload.tenant_id"},
		{name: "fixed without a tenant", fixed: &eventsv1.ServiceCompleted{SourceEventId: "e-2"}, want: "acme"},
		{name: "fixed with blanks around the tenant", fixed: &eventsv1.ServiceCompleted{TenantId: " acme "}, want: "acme"},
		{name: "fixed into another tenant", fixed: &eventsv1.ServiceCompleted{TenantId: "globex"}, want: "fixed.tenant_id"},
		{name: "fixed into the default tenant", fixed: &eventsv1.ServiceCompleted{TenantId: "default"}, want: "fixed.tenant_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Rejected{ID: "r-1", Tenant: "acme", ContentType: "application/json", Payload: tc.payload}
			ev, err := r.Replay(tc.fixed)
			if strings.Contains(tc.want, ".") {
				require.Equal(t, []string{tc.want}, fields(t, err))
				require.Nil(t, ev)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, ev.TenantId)
		})
	}
}
