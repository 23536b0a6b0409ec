// Package telemetry sets up OpenTelemetry tracing: an OTLP exporter when
// OTEL_EXPORTER_OTLP_ENDPOINT is set, no export otherwise, and W3C trace
// context propagation in every case.
package telemetry

import (
	"context"
	"fmt"
	"os"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// Propagator is the W3C trace-context propagator used on every wire.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// Resource describes the process: the service's name and version, then
// whatever OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME add (e.g. the pod
// name and namespace on Kubernetes), which win over the defaults.
func Resource(ctx context.Context, service, version string) (*resource.Resource, error) {
	base := resource.NewSchemaless(
		semconv.ServiceName("huifang-"+service),
		semconv.ServiceVersion(version),
	)
	env, err := resource.New(ctx, resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource from OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	res, err := resource.Merge(base, env)
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil
}

// Setup installs the tracer provider and the propagator for the process and
// returns the provider and a function that flushes and stops it.
func Setup(ctx context.Context, service, version string) (trace.TracerProvider, func(context.Context) error, error) {
	otel.SetTextMapPropagator(Propagator())
	res, err := Resource(ctx, service, version)
	if err != nil {
		return nil, nil, err
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" {
		exp, err := otlptracegrpc.New(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("telemetry: otlp exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	return tp, tp.Shutdown, nil
}
