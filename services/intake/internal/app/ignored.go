package app

import (
	"context"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	eventsv1 "github.com/huifang/huifang/proto/huifang/events/v1"

	"github.com/huifang/huifang/services/intake/internal/ingest"
)

// IgnoredMetric counts the fields of stored events that intake did not use,
// by field: those Huifang sets itself (customer.id, event_id, …), the
// upstream customer.tier a tier rule overrode, and "unknown" for fields it
// does not know (a JSON key, a protobuf field number): their names are the
// sender's, so they are told in the answer, not as labels.
const IgnoredMetric = "huifang_intake_ignored_fields_total"

// NewIgnoredCounter returns the counter IgnoredMetric, for App.Ignored.
func NewIgnoredCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: IgnoredMetric,
		Help: "Fields of stored upstream events that intake did not use, by field: set by Huifang (customer.id, event_id, service_id, " +
			"the masked contacts, customer.upstream_tier), customer.tier overridden by a tier rule, unknown (a JSON key or protobuf field " +
			"intake does not know; the ingest answer's warnings name it).",
	}, []string{"field"})
}

// ignoredLabel is the metric's label of a warning: its field when intake
// knows it, else "unknown".
func ignoredLabel(w ingest.Warning) string {
	if ingest.KnownField(w.Field) {
		return w.Field
	}
	return "unknown"
}

// ignored counts and logs the fields a stored event carried that intake did
// not use. The log line names the tenant, the source system, the service
// and the fields by their metric label: no value, and no key the sender
// chose.
func (a *App) ignored(ctx context.Context, ev *eventsv1.ServiceCompleted, out Ingested) {
	var labels []string
	for _, w := range out.Warnings {
		l := ignoredLabel(w)
		if a.IgnoredFields != nil {
			a.IgnoredFields.WithLabelValues(l).Inc()
		}
		if !slices.Contains(labels, l) {
			labels = append(labels, l)
		}
	}
	a.log().InfoContext(ctx, "event fields ignored", "tenant", ev.GetTenantId(), "source_system", ev.GetSourceSystem(),
		"service_id", out.ServiceID, "fields", labels, "count", len(out.Warnings))
}
