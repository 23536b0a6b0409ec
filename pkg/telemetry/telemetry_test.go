package telemetry

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
)

func TestResourceTakesAttributesFromTheEnvironment(t *testing.T) {
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "k8s.pod.name=scheduler-7d9f,k8s.namespace.name=huifang")
	res, err := Resource(context.Background(), "scheduler", "v1.2.3")
	require.NoError(t, err)
	got := map[attribute.Key]string{}
	for _, kv := range res.Attributes() {
		got[kv.Key] = kv.Value.Emit()
	}
	require.Equal(t, "huifang-scheduler", got["service.name"])
	require.Equal(t, "v1.2.3", got["service.version"])
	require.Equal(t, "scheduler-7d9f", got["k8s.pod.name"])
	require.Equal(t, "huifang", got["k8s.namespace.name"])
}

func TestServiceNameFromTheEnvironmentWins(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "huifang-scheduler-canary")
	res, err := Resource(context.Background(), "scheduler", "dev")
	require.NoError(t, err)
	for _, kv := range res.Attributes() {
		if kv.Key == "service.name" {
			require.Equal(t, "huifang-scheduler-canary", kv.Value.Emit())
			return
		}
	}
	t.Fatal("no service.name")
}
