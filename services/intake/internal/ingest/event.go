package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	typesv1 "github.com/huifang/huifang/proto/huifang/types/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/tenant"
	"github.com/huifang/huifang/services/intake/internal/archive"
)

// SourceTime is when the data of a (validated) event is from: its
// source_updated_at, else its completed_at. The archive's merge rule orders
// inputs by it, so that any order of the same events gives the same archive.
func SourceTime(ev *eventsv1.ServiceCompleted) time.Time {
	if ev.SourceUpdatedAt != nil {
		return ev.SourceUpdatedAt.AsTime()
	}
	return ev.CompletedAt.AsTime()
}

// CustomerInput is what a (validated) event brings to its customer's
// archive record, as of its source time: the customer as sent, the staff
// who served as an owner (seed 002), and the service's org unit when the
// customer names none.
func CustomerInput(ev *eventsv1.ServiceCompleted) archive.Record {
	in := archive.FromProto(ev.Customer, SourceTime(ev))
	in.Owners = archive.AddOwners(in.Owners, ev.StaffId)
	if in.OrgUnit == "" {
		in.OrgUnit = ev.OrgUnit
	}
	return in
}

// ComplaintRef is the key under which a closed complaint is recorded once
// per customer, from whichever source system or channel it comes (seed
// 000: one problem raised with several departments is recorded once): an
// event whose customer already has a service with this reference is a
// duplicate. "" for an event that carries no complaint reference.
//
// Besides it, an event is the same as one stored before when it has the
// same (tenant, source_system, source_event_id): a resend.
func ComplaintRef(ev *eventsv1.ServiceCompleted) string {
	return ev.GetComplaint().GetReference()
}

// SourceKey names an event by what names it upstream: its tenant, source
// system and the source's id ("<tenant>/<source_system>/<source_event_id>",
// each trimmed as Normalize does and path-escaped, so that a '/' in an id
// cannot make two events one; a key longer than MaxSourceKey is a hash of
// it). Every resend of one event has its key, whatever its encoding or
// transport ids; "" when source_system or source_event_id is missing.
func SourceKey(ev *eventsv1.ServiceCompleted) string {
	system, id := strings.TrimSpace(ev.GetSourceSystem()), strings.TrimSpace(ev.GetSourceEventId())
	if system == "" || id == "" {
		return ""
	}
	key := url.PathEscape(tenant.Or(ev.GetTenantId())) + "/" + url.PathEscape(system) + "/" + url.PathEscape(id)
	if len(key) > MaxSourceKey {
		sum := sha256.Sum256([]byte(key))
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	return key
}

// MaxSourceKey bounds a SourceKey kept as it is (keys are indexed).
const MaxSourceKey = 512

// ImportRecord normalizes and checks record i of an import: its customer and
// its source time, which it returns (the record's source_updated_at, else
// now, the time of the import). Violations name records[i].
func ImportRecord(l *invalid.List, i int, c *typesv1.Customer, sourceUpdatedAt *timestamppb.Timestamp, now time.Time) time.Time {
	prefix := fmt.Sprintf("records[%d].customer", i)
	if c == nil {
		l.Add(prefix, "is required")
	} else {
		NormalizeCustomer(c)
		ValidateCustomer(l, prefix, c)
	}
	if sourceUpdatedAt == nil {
		return now
	}
	if sourceUpdatedAt.CheckValid() != nil || sourceUpdatedAt.AsTime().After(now.Add(MaxFutureSkew)) {
		l.Add(fmt.Sprintf("records[%d].source_updated_at", i), "must be a valid time, not in the future")
		return now
	}
	return sourceUpdatedAt.AsTime()
}
