package grpcapi

import (
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"
	intakev1 "github.com/huifang/huifang/proto/huifang/intake/v1"

	"github.com/huifang/huifang/pkg/invalid"
	"github.com/huifang/huifang/pkg/stream"
	"github.com/huifang/huifang/services/intake/internal/app"
	"github.com/huifang/huifang/services/intake/internal/archive"
	"github.com/huifang/huifang/services/intake/internal/ingest"
	"github.com/huifang/huifang/services/intake/internal/privacy"
)

// How answers show the app's values: contacts masked unless revealed.

// View is how the API shows a customer.
func View(c *archive.Customer) *intakev1.CustomerView {
	return &intakev1.CustomerView{
		Customer: c.Proto(), Version: c.Version,
		ServiceSpendYearMinor: c.Metrics.SpendYearMinor, CarsYear: int32(c.Metrics.CarsYear), Referrals: int32(c.Metrics.Referrals),
		AccidentClaimsYearMinor: c.Metrics.ClaimsYearMinor,
		SourceUpdatedAt:         timestamppb.New(c.SourceUpdatedAt), UpdatedAt: timestamppb.New(c.UpdatedAt),
	}
}

// IngestServicesResponse is how the API (and the webhook) shows a batch.
func IngestServicesResponse(b app.Batch) *intakev1.IngestServicesResponse {
	resp := &intakev1.IngestServicesResponse{
		Accepted: int32(b.Accepted), Rejected: int32(b.Rejected), Duplicates: int32(b.Duplicates),
	}
	for i, out := range b.Results {
		r := &intakev1.IngestResult{Index: int32(i)}
		if out.Invalid != nil {
			r.Violations = violations(out.Invalid)
			r.RejectedEventId = out.RejectedID
		} else {
			r.ServiceId, r.CustomerId, r.Duplicate, r.Warnings = out.ServiceID, out.CustomerID, out.Duplicate, warnings(out.Warnings)
		}
		resp.Results = append(resp.Results, r)
	}
	return resp
}

// IngestServiceResponse is the answer for a stored event (or a duplicate).
func IngestServiceResponse(out app.Ingested) *intakev1.IngestServiceResponse {
	return &intakev1.IngestServiceResponse{ServiceId: out.ServiceID, CustomerId: out.CustomerID, Duplicate: out.Duplicate, Warnings: warnings(out.Warnings)}
}

func warnings(ws []ingest.Warning) []*intakev1.FieldWarning {
	var out []*intakev1.FieldWarning
	for _, w := range ws {
		out = append(out, &intakev1.FieldWarning{Field: w.Field, Reason: w.Reason})
	}
	return out
}

func violations(e *invalid.Error) []*intakev1.FieldViolation {
	out := make([]*intakev1.FieldViolation, len(e.Violations))
	for i, v := range e.Violations {
		out[i] = &intakev1.FieldViolation{Field: v.Field, Rule: v.Rule}
	}
	return out
}

// rejectedView is how the API shows a refused input (decrypted by the store)
// and, when it decodes, the event in it, contacts masked: a payload that decodes is masked field by field and encoded again
// in its content type; one that does not is masked as text (privacy.MaskText).
func rejectedView(r ingest.Rejected) (*intakev1.RejectedEvent, *eventsv1.ServiceCompleted) {
	out := &intakev1.RejectedEvent{
		Id: r.ID, TenantId: r.Tenant, Source: r.Source, Field: r.Field, Reason: r.Reason,
		ContentType: r.ContentType, Payload: r.Payload, ReceivedAt: timestamppb.New(r.ReceivedAt),
		ReplayedServiceId: r.ReplayedServiceID, Masked: true,
	}
	if r.ReplayedAt != nil {
		out.ReplayedAt = timestamppb.New(*r.ReplayedAt)
	}
	ev, err := ingest.Decode(r.ContentType, r.Payload)
	if err != nil {
		ev = nil
	}
	if ev == nil {
		out.Payload = []byte(privacy.MaskText(string(r.Payload)))
		return out, nil
	}
	maskEvent(ev)
	if ingest.ContentType(r.ContentType, r.Payload) == stream.ContentTypeProtobuf {
		out.Payload, err = proto.Marshal(ev)
	} else {
		out.Payload, err = protojson.MarshalOptions{UseProtoNames: true}.Marshal(ev)
		out.Payload = []byte(privacy.MaskText(string(out.Payload)))
	}
	if err != nil {
		out.Payload = nil
	}
	return out, ev
}

// maskEvent masks the contacts in a decoded event: the customer's phone and
// email, and anything that looks like one in the free-form attributes.
func maskEvent(ev *eventsv1.ServiceCompleted) {
	if c := ev.GetCustomer(); c != nil {
		c.Name = privacy.MaskName(c.Name)
		c.Phone = privacy.MaskPhone(c.Phone)
		c.Email = privacy.MaskEmail(c.Email)
	}
	for k, v := range ev.GetAttributes() {
		ev.Attributes[k] = privacy.MaskText(v)
	}
}
