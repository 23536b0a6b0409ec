package app

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// consumerLag exports the backlog of the service's durable consumers, read
// from JetStream at scrape time: messages not yet delivered and messages
// delivered but not yet acknowledged.
type consumerLag struct {
	js jetstream.JetStream

	mu        sync.Mutex
	consumers []consumerRef
}

type consumerRef struct{ stream, durable string }

var (
	consumerPendingDesc = prometheus.NewDesc("huifang_consumer_pending",
		"Messages of the stream the consumer has not yet been delivered.", []string{"stream", "consumer"}, nil)
	consumerAckPendingDesc = prometheus.NewDesc("huifang_consumer_ack_pending",
		"Messages delivered to the consumer and not yet acknowledged.", []string{"stream", "consumer"}, nil)
	consumerRedeliveredDesc = prometheus.NewDesc("huifang_consumer_redelivered",
		"Messages delivered more than once and not yet acknowledged.", []string{"stream", "consumer"}, nil)
)

// add registers a durable; it reports false when it was registered already.
func (c *consumerLag) add(stream, durable string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ref := consumerRef{stream, durable}
	if slices.Contains(c.consumers, ref) {
		return false
	}
	c.consumers = append(c.consumers, ref)
	return true
}

// Describe implements prometheus.Collector.
func (c *consumerLag) Describe(ch chan<- *prometheus.Desc) {
	ch <- consumerPendingDesc
	ch <- consumerAckPendingDesc
	ch <- consumerRedeliveredDesc
}

// Collect implements prometheus.Collector. A consumer that cannot be read
// (not created yet, NATS away) is left out of the scrape.
func (c *consumerLag) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	list := append([]consumerRef(nil), c.consumers...)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, r := range list {
		cons, err := c.js.Consumer(ctx, r.stream, r.durable)
		if err != nil {
			continue
		}
		info, err := cons.Info(ctx)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(consumerPendingDesc, prometheus.GaugeValue, float64(info.NumPending), r.stream, r.durable)
		ch <- prometheus.MustNewConstMetric(consumerAckPendingDesc, prometheus.GaugeValue, float64(info.NumAckPending), r.stream, r.durable)
		ch <- prometheus.MustNewConstMetric(consumerRedeliveredDesc, prometheus.GaugeValue, float64(info.NumRedelivered), r.stream, r.durable)
	}
}
