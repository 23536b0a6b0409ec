package deploy_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/huifang/huifang/deploy"
	"github.com/huifang/huifang/pkg/stream"
)

// services and their ports, as in README.md.
var services = map[string][2]int32{
	"intake": {7001, 8001}, "scheduler": {7002, 8002}, "dispatch": {7003, 8003},
	"feedback": {7004, 8004}, "analytics": {7005, 8005},
}

// callers are the services that call other services' gRPC ports, each on
// its own account (docs/security.md, "Services calling services"): the
// Secret with its client secret (compose: <SERVICE>_CLIENT_SECRET), the
// variables naming the peers it calls, and the variable of the peers' CA.
// dispatch asks intake for contacts (RevealContact) and feedback for the
// questionnaire of a task (GetQuestionnaire; FEEDBACK_CA_FILE defaults to
// INTAKE_CA_FILE: one CA signs the peers' certificates); intake asks the
// others for their part of an export (ExportCustomerData).
var callers = map[string]struct {
	secret string
	addrs  map[string]string // variable: the service it names
	caFile string
}{
	"dispatch": {"huifang-dispatch-client", map[string]string{"INTAKE_ADDR": "intake", "FEEDBACK_ADDR": "feedback"}, "INTAKE_CA_FILE"},
	"intake": {"huifang-intake-client", map[string]string{
		"SCHEDULER_ADDR": "scheduler", "DISPATCH_ADDR": "dispatch", "FEEDBACK_ADDR": "feedback", "ANALYTICS_ADDR": "analytics",
	}, "PEER_CA_FILE"},
}

// console is the console's name: the web pages (HTTP 8006 only), a client
// of every service's gRPC port with each signed-in person's token; no
// database, no NATS, no client secret of its own (a public client).
const console = "console"

// consoleHTTP is the console's HTTP port.
const consoleHTTP = 8006

// consoleSecret holds the console's SESSION_KEY (key session-key).
const consoleSecret = "huifang-console-session"

// calls reports whether from calls to's gRPC port (callers; the console
// calls every service).
func calls(from, to string) bool {
	if from == console {
		_, ok := services[to]
		return ok
	}
	for _, peer := range callers[from].addrs {
		if peer == to {
			return true
		}
	}
	return false
}

// typed maps the kinds the manifests may hold to their API types.
var typed = map[string]func() any{
	"v1/Namespace":                           func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                      func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"batch/v1/Job":                           func() any { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"networking.k8s.io/v1/NetworkPolicy":     func() any { return &networkingv1.NetworkPolicy{} },
}

// operatorKinds are custom resources of operators the deployment relies on;
// their schemas are not in k8s.io/api, so only their shape is checked.
var operatorKinds = []string{"postgresql.cnpg.io/v1/Cluster", "postgresql.cnpg.io/v1/ScheduledBackup"}

// externalSecrets are made outside the overlay, by an operator or by hand,
// as the overlay's comments say.
var externalSecrets = map[string][]string{
	"dev":  nil,
	"prod": {"huifang-pg-app", "huifang-nats", "huifang-backup-s3", "huifang-nats-users", "huifang-intake-keys", "huifang-dispatch-client", "huifang-intake-client", "nats-ca", grpcTLSSecret, consoleSecret},
}

// grpcTLSSecret holds the certificate the services serve gRPC with in
// production, and its CA, under the keys cert-manager writes: tls.crt,
// tls.key, ca.crt.
const grpcTLSSecret = "huifang-grpc-tls"

type rendered struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	pdbs        []*policyv1.PodDisruptionBudget
	hpas        map[string]*autoscalingv2.HorizontalPodAutoscaler
	policies    []*networkingv1.NetworkPolicy
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	custom      map[string]map[string]any
}

// render builds an overlay and decodes every manifest strictly: an unknown
// field or a value of the wrong type fails.
func render(t *testing.T, overlay string) rendered {
	t.Helper()
	objs, _, err := deploy.Render(filepath.Join("k8s", "overlays", overlay))
	require.NoError(t, err)
	r := rendered{
		deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{}, configMaps: map[string]*corev1.ConfigMap{},
		secrets: map[string]*corev1.Secret{}, custom: map[string]map[string]any{},
	}
	for _, o := range objs {
		gvk := o.APIVersion + "/" + o.Kind
		if o.Kind != "Namespace" {
			require.NotEmpty(t, o.Namespace, "%s %s has a namespace", gvk, o.Name)
		}
		if slices.Contains(operatorKinds, gvk) {
			var m map[string]any
			require.NoError(t, sigsyaml.Unmarshal(o.YAML, &m))
			require.Contains(t, m, "spec", "%s %s", gvk, o.Name)
			r.custom[o.Kind+"/"+o.Name] = m
			continue
		}
		newObj, ok := typed[gvk]
		require.True(t, ok, "%s %s: a kind the manifests are not expected to hold", gvk, o.Name)
		obj := newObj()
		require.NoError(t, decodeStrict(o.YAML, obj), "%s %s decodes strictly into the API type", gvk, o.Name)
		switch x := obj.(type) {
		case *appsv1.Deployment:
			r.deployments[x.Name] = x
		case *corev1.Service:
			r.services[x.Name] = x
		case *policyv1.PodDisruptionBudget:
			r.pdbs = append(r.pdbs, x)
		case *autoscalingv2.HorizontalPodAutoscaler:
			r.hpas[x.Spec.ScaleTargetRef.Name] = x
		case *networkingv1.NetworkPolicy:
			r.policies = append(r.policies, x)
		case *corev1.ConfigMap:
			r.configMaps[x.Name] = x
		case *corev1.Secret:
			r.secrets[x.Name] = x
		}
	}
	return r
}

// decodeStrict decodes a manifest as the API server does in strict mode:
// field names are case-sensitive, and unknown or duplicate fields fail.
// (encoding/json alone would take "hostnetwork" for hostNetwork.)
func decodeStrict(y []byte, obj any) error {
	j, err := sigsyaml.YAMLToJSONStrict(y)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(j, obj)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

func TestDecodeStrictRejectsWhatTheAPIServerWould(t *testing.T) {
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"valid", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 80}]}\n", ""},
		{"unknown field", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {prots: []}\n", "unknown field"},
		{"wrong case", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {clusterip: None}\n", "unknown field"},
		{"wrong type", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: eighty}]}\n", "cannot unmarshal"},
		{"duplicate field", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nmetadata: {name: y}\n", "already set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := decodeStrict([]byte(tt.yaml), &corev1.Service{})
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestOverlaysRenderAndDecodeStrictly(t *testing.T) {
	for _, overlay := range deploy.Overlays() {
		t.Run(overlay, func(t *testing.T) {
			r := render(t, overlay)
			require.Len(t, r.deployments, len(services)+1, "one Deployment per service, and the console's")
			t.Run(console, func(t *testing.T) { checkConsole(t, overlay, r) })
			for name, ports := range services {
				t.Run(name, func(t *testing.T) {
					d := r.deployments[name]
					require.NotNil(t, d, "Deployment %s", name)
					checkDeployment(t, overlay, r, d, ports)
				})
			}
			cfg := r.configMaps["huifang-config"]
			require.NotNil(t, cfg)
			require.NotContains(t, cfg.Data, "DEV_MODE", "development mode is no shared setting")
			want := map[string]string{"dev": "1", "prod": "3"}[overlay]
			require.Equal(t, want, cfg.Data["STREAM_REPLICAS"], "streams are R3 on the three-node NATS cluster")
			require.True(t, strings.HasPrefix(cfg.Data["AUTH_ISSUER"], "https://"), "every call needs a token of an issuer reached over TLS")
			require.NotEmpty(t, cfg.Data["AUTH_AUDIENCE"])
			issuer := false
			for _, np := range r.policies {
				issuer = issuer || (np.Name == "huifang-egress-issuer" && len(np.Spec.Egress) > 0)
			}
			require.True(t, issuer, "the services may fetch the issuer's keys")
		})
	}
}

func checkDeployment(t *testing.T, overlay string, r rendered, d *appsv1.Deployment, ports [2]int32) {
	spec := d.Spec.Template.Spec
	podLabels := labels.Set(d.Spec.Template.Labels)
	sel := labels.SelectorFromSet(d.Spec.Selector.MatchLabels)
	require.True(t, sel.Matches(podLabels), "the selector matches the pod template")
	require.Equal(t, "RollingUpdate", string(d.Spec.Strategy.Type))
	require.Zero(t, d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue(), "a rollout never lowers capacity")

	// Security: non-root, no privilege escalation, read-only root, no capabilities.
	require.NotNil(t, spec.SecurityContext.RunAsNonRoot)
	require.True(t, *spec.SecurityContext.RunAsNonRoot)
	require.False(t, *spec.AutomountServiceAccountToken)

	cfg := r.configMaps["huifang-config"]
	delay, err := time.ParseDuration(cfg.Data["SHUTDOWN_DELAY"])
	require.NoError(t, err)
	grace, err := time.ParseDuration(cfg.Data["SHUTDOWN_GRACE"])
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Duration(*spec.TerminationGracePeriodSeconds)*time.Second, delay+3*grace,
		"the pod may take SHUTDOWN_DELAY + gRPC drain + loops + outbox flush before it is killed")

	all := append(slices.Clone(spec.InitContainers), spec.Containers...)
	require.Len(t, spec.InitContainers, 1, "the migration init step")
	require.Contains(t, envNames(spec.InitContainers[0]), "MIGRATE_ONLY")
	for _, c := range all {
		image, tag, ok := strings.Cut(c.Image, ":")
		require.True(t, ok, "%s: image %s has a tag", c.Name, c.Image)
		require.Equal(t, "huifang/"+d.Name, image)
		if overlay == "prod" {
			require.NotContains(t, []string{"latest", "dev"}, tag, "production images are pinned")
		}
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			require.Contains(t, c.Resources.Requests, res, "%s requests %s", c.Name, res)
			require.Contains(t, c.Resources.Limits, res, "%s limits %s", c.Name, res)
		}
		sc := c.SecurityContext
		require.NotNil(t, sc, c.Name)
		require.False(t, *sc.AllowPrivilegeEscalation)
		require.True(t, *sc.ReadOnlyRootFilesystem)
		require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
		if c.Name == d.Name || len(spec.Containers) == 1 && c.Name == spec.Containers[0].Name {
			env := map[string]corev1.EnvVar{}
			for _, e := range c.Env {
				env[e.Name] = e
			}
			require.Equal(t, d.Name, env["NATS_USER"].Value, "%s connects to NATS as its own user", d.Name)
			require.Equal(t, "huifang-nats-users", env["NATS_PASSWORD"].ValueFrom.SecretKeyRef.Name)
			if overlay == "prod" {
				require.Equal(t, "/etc/huifang/nats-ca/ca.crt", env["NATS_CA_FILE"].Value, "prod checks the NATS servers' certificate")
				m, secret, key, ok := mountedSecretFile(t, spec, c, env["NATS_CA_FILE"].Value)
				require.True(t, ok, "NATS_CA_FILE is a file of a mounted Secret")
				require.Equal(t, "nats-ca", secret.SecretName)
				require.Equal(t, "ca.crt", key)
				require.True(t, m.ReadOnly, "the NATS CA is mounted read-only")
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				ref := e.ValueFrom.SecretKeyRef.Name
				if opt := e.ValueFrom.SecretKeyRef.Optional; opt != nil && *opt {
					require.Equal(t, "dev", overlay, "%s: only development may do without Secret %s", c.Name, ref)
					continue
				}
				if _, ok := r.secrets[ref]; !ok {
					require.Contains(t, externalSecrets[overlay], ref, "%s reads Secret %s, which nothing makes", c.Name, ref)
				}
			}
		}
	}

	for _, v := range spec.Volumes {
		if v.Secret == nil {
			continue
		}
		if _, ok := r.secrets[v.Secret.SecretName]; !ok {
			require.Contains(t, externalSecrets[overlay], v.Secret.SecretName, "volume %s mounts Secret %s, which nothing makes", v.Name, v.Secret.SecretName)
		}
	}

	main := spec.Containers[0]
	require.Len(t, spec.Containers, 1)
	checkKeys(t, overlay, r, d.Name, main)
	checkGRPCTLS(t, overlay, d)
	named := map[string]int32{}
	for _, p := range main.Ports {
		named[p.Name] = p.ContainerPort
	}
	require.Equal(t, map[string]int32{"grpc": ports[0], "http": ports[1]}, named)
	require.Contains(t, envNames(main), "DATABASE_URL")
	require.Contains(t, envNames(main), "NATS_URL")
	probe := func(p *corev1.Probe, path string) {
		require.NotNil(t, p, "probe %s", path)
		require.NotNil(t, p.HTTPGet)
		require.Equal(t, path, p.HTTPGet.Path)
		require.Equal(t, intstr.FromString("http"), p.HTTPGet.Port)
	}
	probe(main.ReadinessProbe, "/readyz")
	probe(main.LivenessProbe, "/healthz")

	svc := r.services[d.Name]
	require.NotNil(t, svc, "Service %s", d.Name)
	require.True(t, labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels), "Service %s selects the pods", d.Name)
	for _, p := range svc.Spec.Ports {
		require.Contains(t, named, p.TargetPort.String(), "Service %s port %s targets a named container port", d.Name, p.Name)
	}

	pdbs := covering(t, r, podLabels)
	require.Len(t, pdbs, 1, "one PodDisruptionBudget covers %s", d.Name)
	require.NotNil(t, pdbs[0].Spec.MaxUnavailable)

	hpa := r.hpas[d.Name]
	require.NotNil(t, hpa, "HorizontalPodAutoscaler for %s", d.Name)
	require.Equal(t, "Deployment", hpa.Spec.ScaleTargetRef.Kind)
	require.Equal(t, *d.Spec.Replicas, *hpa.Spec.MinReplicas, "the autoscaler starts from the Deployment's replicas")
	require.Greater(t, hpa.Spec.MaxReplicas, *hpa.Spec.MinReplicas)
	if overlay == "prod" {
		require.GreaterOrEqual(t, *d.Spec.Replicas, int32(2), "production runs every service twice")
	}

	// NetworkPolicies: the pods are isolated both ways, and every port a
	// policy names exists on the pods it selects.
	policies, ingress, egress := selecting(t, r, podLabels)
	for _, np := range policies {
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				if p.Port != nil && p.Port.Type == intstr.String {
					require.Contains(t, named, p.Port.StrVal, "policy %s names port %s", np.Name, p.Port.StrVal)
				}
			}
		}
	}
	require.True(t, ingress && egress, "NetworkPolicies restrict %s's traffic both ways", d.Name)
}

// checkKeys: intake reads ENCRYPTION_KEYS and HASH_KEY from Secret
// huifang-intake-keys, never from a value in the manifests; only the
// development overlay sets DEV_MODE (and may then do without the Secret).
// Only the callers have a client secret (checkClient).
func checkKeys(t *testing.T, overlay string, r rendered, name string, c corev1.Container) {
	t.Helper()
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if overlay == "dev" && name == "intake" {
		require.Equal(t, "true", env["DEV_MODE"].Value, "the development overlay runs intake in DEV_MODE")
	} else {
		require.NotContains(t, env, "DEV_MODE", "%s %s: DEV_MODE only in development", overlay, name)
	}
	if _, ok := callers[name]; ok {
		checkClient(t, overlay, r, name, env)
	} else {
		require.NotContains(t, env, "AUTH_CLIENT_SECRET", "%s %s: only %v call another service", overlay, name, slices.Sorted(maps.Keys(callers)))
	}
	if name != "intake" {
		return
	}
	for variable, key := range map[string]string{"ENCRYPTION_KEYS": "encryption-keys", "HASH_KEY": "hash-key"} {
		e, ok := env[variable]
		require.True(t, ok, "intake reads %s", variable)
		require.Empty(t, e.Value, "%s: no value in the manifests", variable)
		require.NotNil(t, e.ValueFrom, variable)
		require.NotNil(t, e.ValueFrom.SecretKeyRef, "%s comes from a Secret", variable)
		require.Equal(t, "huifang-intake-keys", e.ValueFrom.SecretKeyRef.Name, variable)
		require.Equal(t, key, e.ValueFrom.SecretKeyRef.Key, variable)
		optional := e.ValueFrom.SecretKeyRef.Optional != nil && *e.ValueFrom.SecretKeyRef.Optional
		require.Equal(t, overlay == "dev", optional, "%s: required outside development", variable)
	}
}

// admits reports whether a policy of the given type lets from's pods reach
// to's pods on port (to's gRPC port, named grpc on the pods): an egress rule
// of a policy selecting from, or an ingress rule of one selecting to.
func admits(t *testing.T, policies []*networkingv1.NetworkPolicy, pt networkingv1.PolicyType, from, to *appsv1.Deployment, port int32) bool {
	t.Helper()
	own, peer := labels.Set(from.Spec.Template.Labels), labels.Set(to.Spec.Template.Labels)
	if pt == networkingv1.PolicyTypeIngress {
		own, peer = peer, own
	}
	for _, np := range policies {
		if !slices.Contains(np.Spec.PolicyTypes, pt) {
			continue
		}
		s, err := metaSelector(&np.Spec.PodSelector)
		require.NoError(t, err)
		if !s.Matches(own) {
			continue
		}
		type rule struct {
			ports []networkingv1.NetworkPolicyPort
			peers []networkingv1.NetworkPolicyPeer
		}
		var rules []rule
		for _, r := range np.Spec.Ingress {
			rules = append(rules, rule{r.Ports, r.From})
		}
		if pt == networkingv1.PolicyTypeEgress {
			rules = nil
			for _, r := range np.Spec.Egress {
				rules = append(rules, rule{r.Ports, r.To})
			}
		}
		for _, r := range rules {
			if !portAdmits(r.ports, "grpc", port) {
				continue
			}
			for _, p := range r.peers {
				if p.PodSelector == nil || p.NamespaceSelector != nil {
					continue
				}
				ps, err := metaSelector(p.PodSelector)
				require.NoError(t, err)
				if ps.Matches(peer) {
					return true
				}
			}
		}
	}
	return false
}

// portAdmits reports whether a rule's ports take a container port, by its
// name or its number (no ports, or a port without a number, take all).
func portAdmits(ports []networkingv1.NetworkPolicyPort, name string, number int32) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		switch {
		case p.Port == nil:
			return true
		case p.Port.Type == intstr.String && p.Port.StrVal == name:
			return true
		case p.Port.Type == intstr.Int && p.Port.IntVal == number:
			return true
		case p.Port.Type == intstr.Int && p.EndPort != nil && p.Port.IntVal <= number && number <= *p.EndPort:
			return true
		}
	}
	return false
}

// checkClient: a caller (dispatch, intake) calls each peer's gRPC port
// through the peer's Service (INTAKE_ADDR; SCHEDULER_ADDR, DISPATCH_ADDR,
// FEEDBACK_ADDR, ANALYTICS_ADDR) on its own account, with AUTH_CLIENT_SECRET
// from its Secret (huifang-dispatch-client, huifang-intake-client; key
// client-secret), never from a value in the manifests and required in every
// overlay; and it checks the peers' certificate wherever a peer serves gRPC
// over TLS.
func checkClient(t *testing.T, overlay string, r rendered, name string, env map[string]corev1.EnvVar) {
	t.Helper()
	caller := callers[name]
	e, ok := env["AUTH_CLIENT_SECRET"]
	require.True(t, ok, "%s reads AUTH_CLIENT_SECRET", name)
	require.Empty(t, e.Value, "%s AUTH_CLIENT_SECRET: no value in the manifests", name)
	require.NotNil(t, e.ValueFrom, name)
	require.NotNil(t, e.ValueFrom.SecretKeyRef, "%s AUTH_CLIENT_SECRET comes from a Secret", name)
	require.Equal(t, caller.secret, e.ValueFrom.SecretKeyRef.Name, name)
	require.Equal(t, "client-secret", e.ValueFrom.SecretKeyRef.Key, name)
	require.False(t, e.ValueFrom.SecretKeyRef.Optional != nil && *e.ValueFrom.SecretKeyRef.Optional,
		"%s: %s's client secret is required", overlay, name)

	for variable, peer := range caller.addrs {
		host, port, err := net.SplitHostPort(env[variable].Value)
		require.NoError(t, err, "%s %s is host:port", name, variable)
		svcName, _, _ := strings.Cut(host, ".")
		svc := r.services[svcName]
		require.NotNil(t, svc, "%s %s %s names a Service", name, variable, host)
		pd := r.deployments[peer]
		require.NotNil(t, pd, "Deployment %s", peer)
		require.True(t, labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pd.Spec.Template.Labels)),
			"%s %s's Service %s selects %s's pods", name, variable, svcName, peer)
		var grpc *corev1.ServicePort
		for i, p := range svc.Spec.Ports {
			if p.Name == "grpc" {
				grpc = &svc.Spec.Ports[i]
			}
		}
		require.NotNil(t, grpc, "Service %s has a grpc port", svcName)
		require.Equal(t, fmt.Sprint(grpc.Port), port, "%s %s is Service %s's grpc port", name, variable, svcName)
		require.Equal(t, intstr.FromString("grpc"), grpc.TargetPort)
		require.Equal(t, fmt.Sprint(services[peer][0]), port, "%s %s is %s's gRPC port", name, variable, peer)

		if slices.Contains(envNames(pd.Spec.Template.Spec.Containers[0]), "GRPC_TLS_CERT") {
			require.NotEmpty(t, env[caller.caFile].Value, "%s: %s serves gRPC over TLS, %s checks its certificate (%s)", overlay, peer, name, caller.caFile)
		}
	}
}

// checkGRPCTLS: in production every service serves gRPC over TLS
// (GRPC_TLS_CERT, GRPC_TLS_KEY) with the certificate of Secret
// huifang-grpc-tls, whose volume the container mounts read-only and whole
// (no subPath: a renewed certificate must reach the files the service
// reloads); a caller checks its peers' certificate against that Secret's
// ca.crt in the same mount (INTAKE_CA_FILE for dispatch, PEER_CA_FILE for
// intake). The development overlay serves plaintext gRPC; checkClient holds
// any overlay to a CA wherever a peer serves TLS.
func checkGRPCTLS(t *testing.T, overlay string, d *appsv1.Deployment) {
	t.Helper()
	if overlay != "prod" {
		return
	}
	spec := d.Spec.Template.Spec
	c := spec.Containers[0]
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	files := map[string]string{"GRPC_TLS_CERT": "tls.crt", "GRPC_TLS_KEY": "tls.key"}
	if caller, ok := callers[d.Name]; ok {
		files[caller.caFile] = "ca.crt"
	}
	mount := ""
	for _, variable := range slices.Sorted(maps.Keys(files)) {
		e, ok := env[variable]
		require.True(t, ok, "%s %s sets %s", overlay, d.Name, variable)
		require.Nil(t, e.ValueFrom, "%s %s: %s is a path", overlay, d.Name, variable)
		m, secret, key, ok := mountedSecretFile(t, spec, c, e.Value)
		require.True(t, ok, "%s %s: %s=%s is a file of a Secret the container mounts", overlay, d.Name, variable, e.Value)
		require.Equal(t, grpcTLSSecret, secret.SecretName, "%s %s: %s is a file of Secret %s", overlay, d.Name, variable, grpcTLSSecret)
		require.Equal(t, files[variable], key, "%s %s: %s is the Secret's %s", overlay, d.Name, variable, files[variable])
		require.False(t, secret.Optional != nil && *secret.Optional, "%s %s: Secret %s is required", overlay, d.Name, grpcTLSSecret)
		require.True(t, m.ReadOnly, "%s %s: Secret %s is mounted read-only", overlay, d.Name, grpcTLSSecret)
		if mount == "" {
			mount = m.MountPath
		}
		require.Equal(t, mount, m.MountPath, "%s %s: %s is in the same mount as the certificate", overlay, d.Name, variable)
	}
}

// mountedSecretFile resolves path, a file the container c reads, to the
// Secret volume mounted there (the mount nearest the file, as the kubelet
// nests them) and the Secret's key at that path; ok is false when no mount
// of a Secret volume holds path. A subPath mount fails the test: Kubernetes
// never updates its files.
func mountedSecretFile(t *testing.T, spec corev1.PodSpec, c corev1.Container, path string) (m corev1.VolumeMount, secret *corev1.SecretVolumeSource, key string, ok bool) {
	t.Helper()
	rel := ""
	for _, vm := range c.VolumeMounts {
		r, inside := strings.CutPrefix(path, strings.TrimSuffix(vm.MountPath, "/")+"/")
		if path == vm.MountPath {
			r, inside = "", true
		}
		if inside && len(vm.MountPath) > len(m.MountPath) {
			m, rel = vm, r
		}
	}
	if m.Name == "" {
		return m, nil, "", false
	}
	require.Empty(t, m.SubPath, "%s: %s is mounted with subPath, which never sees a renewed file", c.Name, m.MountPath)
	i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
	require.GreaterOrEqual(t, i, 0, "%s mounts volume %s, which the pod has", c.Name, m.Name)
	secret = spec.Volumes[i].Secret
	if secret == nil || rel == "" {
		return m, secret, "", false
	}
	if len(secret.Items) == 0 {
		return m, secret, rel, !strings.Contains(rel, "/")
	}
	for _, item := range secret.Items {
		if item.Path == rel {
			return m, secret, item.Key, true
		}
	}
	return m, secret, "", false
}

func envNames(c corev1.Container) []string {
	var out []string
	for _, e := range c.Env {
		out = append(out, e.Name)
	}
	return out
}

func metaSelector(s interface {
	String() string
}) (labels.Selector, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var ls struct {
		MatchLabels map[string]string `json:"matchLabels"`
	}
	if err := json.Unmarshal(b, &ls); err != nil {
		return nil, err
	}
	return labels.SelectorFromSet(ls.MatchLabels), nil
}

// One service calls another in two places only (callers): dispatch asks
// intake for a contact on intake's gRPC port, intake asks scheduler,
// dispatch, feedback and analytics for their part of an export on their gRPC
// ports. A policy rule that lets one service's pods reach another's admits
// one of these calls, and on the callee's gRPC port only; the policies let
// each caller reach each of its peers both ways (out of the caller, into the
// peer).
func TestNetworkPoliciesAllowOnlyTheNeededCalls(t *testing.T) {
	for _, overlay := range deploy.Overlays() {
		t.Run(overlay, func(t *testing.T) {
			r := render(t, overlay)
			for _, np := range r.policies {
				selected, err := metaSelector(&np.Spec.PodSelector)
				require.NoError(t, err)
				check := func(dir string, ports []networkingv1.NetworkPolicyPort, peers []networkingv1.NetworkPolicyPeer) {
					for _, peer := range peers {
						if peer.PodSelector == nil || peer.NamespaceSelector != nil || peer.IPBlock != nil {
							continue
						}
						other, err := metaSelector(peer.PodSelector)
						require.NoError(t, err)
						for from, fd := range r.deployments {
							for to, td := range r.deployments {
								src, dst := selected, other
								if dir == "in" {
									src, dst = other, selected
								}
								if from == to || !src.Matches(labels.Set(fd.Spec.Template.Labels)) || !dst.Matches(labels.Set(td.Spec.Template.Labels)) {
									continue
								}
								require.True(t, calls(from, to), "policy %s lets %s reach %s's pods", np.Name, from, to)
								require.NotEmpty(t, ports, "policy %s lets %s reach every port of %s", np.Name, from, to)
								for _, p := range ports {
									grpc := p.Port != nil && p.EndPort == nil &&
										(p.Port.Type == intstr.String && p.Port.StrVal == "grpc" || p.Port.Type == intstr.Int && p.Port.IntVal == services[to][0])
									port := "every port"
									if p.Port != nil {
										port = p.Port.String()
									}
									require.True(t, grpc, "policy %s lets %s reach %s on %s, not only its gRPC port", np.Name, from, to, port)
								}
							}
						}
					}
				}
				for _, rule := range np.Spec.Ingress {
					check("in", rule.Ports, rule.From)
				}
				for _, rule := range np.Spec.Egress {
					check("out", rule.Ports, rule.To)
				}
			}
			for caller, c := range callers {
				for _, peer := range c.addrs {
					from, to := r.deployments[caller], r.deployments[peer]
					require.True(t, admits(t, r.policies, networkingv1.PolicyTypeEgress, from, to, services[peer][0]),
						"%s's pods may reach %s's gRPC port", caller, peer)
					require.True(t, admits(t, r.policies, networkingv1.PolicyTypeIngress, from, to, services[peer][0]),
						"%s's pods admit %s on their gRPC port", peer, caller)
				}
			}
			for peer := range services {
				from, to := r.deployments[console], r.deployments[peer]
				require.True(t, admits(t, r.policies, networkingv1.PolicyTypeEgress, from, to, services[peer][0]),
					"the console's pods may reach %s's gRPC port", peer)
				require.True(t, admits(t, r.policies, networkingv1.PolicyTypeIngress, from, to, services[peer][0]),
					"%s's pods admit the console on their gRPC port", peer)
			}
			webhook := false
			for _, np := range r.policies {
				if np.Name != "huifang-intake-webhook" {
					continue
				}
				webhook = true
				require.Equal(t, "intake", np.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"], "only intake serves the webhook")
				for _, rule := range np.Spec.Ingress {
					for _, p := range rule.Ports {
						require.Equal(t, "http", p.Port.String())
					}
				}
			}
			require.True(t, webhook, "API clients may reach intake's webhook")
			if overlay == "prod" {
				require.Contains(t, r.custom, "Cluster/huifang-pg")
				spec := r.custom["Cluster/huifang-pg"]["spec"].(map[string]any)
				require.EqualValues(t, 3, spec["instances"], "Postgres runs a primary and two replicas")
				require.Contains(t, spec, "backup")
				require.Contains(t, r.custom, "ScheduledBackup/huifang-pg-nightly")
			}
		})
	}
}

// The NATS Helm values sync every write and, in production, run three
// JetStream nodes.
func TestNATSHelmValues(t *testing.T) {
	tests := []struct {
		file     string
		clusterd bool
	}{
		{"k8s/nats/values.yaml", true},
		{"k8s/nats/values-dev.yaml", false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var v struct {
				Config struct {
					Cluster struct {
						Enabled  bool `yaml:"enabled"`
						Replicas int  `yaml:"replicas"`
					} `yaml:"cluster"`
					JetStream struct {
						Enabled bool              `yaml:"enabled"`
						Merge   map[string]string `yaml:"merge"`
					} `yaml:"jetstream"`
				} `yaml:"config"`
			}
			b, err := os.ReadFile(tt.file)
			require.NoError(t, err)
			require.NoError(t, yaml.Unmarshal(b, &v))
			require.True(t, v.Config.JetStream.Enabled)
			require.Equal(t, "always", v.Config.JetStream.Merge["sync_interval"])
			require.Equal(t, tt.clusterd, v.Config.Cluster.Enabled)
			if tt.clusterd {
				require.Equal(t, 3, v.Config.Cluster.Replicas)
			}
		})
	}
}

// The compose file runs the topology the multi-replica test checks.
func TestComposeTopology(t *testing.T) {
	c := composeFile(t)
	for _, name := range []string{"nats-1", "nats-2", "nats-3", "postgres", "otel-collector", "jaeger", "prometheus", "grafana",
		"intake", "scheduler-1", "scheduler-2", "dispatch-1", "dispatch-2", "feedback", "analytics", console} {
		require.Contains(t, c.Services, name)
	}
	replicas := map[string]int{}
	for name, s := range c.Services {
		image, _, _ := strings.Cut(s.Image, ":")
		svc, ok := strings.CutPrefix(image, "huifang/")
		if !ok {
			continue
		}
		replicas[svc]++
		if svc == console {
			continue // TestComposeConsole
		}
		require.Contains(t, services, svc, name)
		require.Equal(t, "3", s.Environment["STREAM_REPLICAS"], "%s: R3 streams", name)
		require.Equal(t, "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222", s.Environment["NATS_URL"], name)
		require.Equal(t, fmt.Sprintf(":%d", services[svc][1]), s.Environment["HTTP_ADDR"], name)
		require.Contains(t, s.Environment["AUTH_ISSUER"], "${AUTH_ISSUER:?", "%s: the issuer is required", name)
		require.Equal(t, svc, s.Build["args"].(map[string]any)["SERVICE"], name)
		require.NotContains(t, s.Environment, "DEV_MODE", "%s: no development mode in the shipped compose file", name)
		if svc == "intake" {
			require.Contains(t, s.Environment["ENCRYPTION_KEYS"], "${ENCRYPTION_KEYS:?", "intake's keys are required")
			require.Contains(t, s.Environment["HASH_KEY"], "${HASH_KEY:?", "intake's keys are required")
		}
		if caller, ok := callers[svc]; ok {
			secret := strings.ToUpper(svc) + "_CLIENT_SECRET"
			require.Contains(t, s.Environment["AUTH_CLIENT_SECRET"], "${"+secret+":?", "%s: %s's client secret is required", name, svc)
			for variable, peer := range caller.addrs {
				host, port, err := net.SplitHostPort(s.Environment[variable])
				require.NoError(t, err, "%s: %s is host:port", name, variable)
				require.Equal(t, fmt.Sprint(services[peer][0]), port, "%s: %s is %s's gRPC port", name, variable, peer)
				// The compose services answering to host (by name or network
				// alias): every replica of peer, and nothing else.
				answer, replicas := c.answering(host, peer)
				for _, other := range answer {
					o := c.Services[other]
					require.True(t, strings.HasPrefix(o.Image, "huifang/"+peer+":"), "%s: %s %s is %s, not %s", name, variable, host, peer, other)
					require.Equal(t, ":"+port, o.Environment["GRPC_ADDR"], "%s: %s serves gRPC on the port %s dials", name, other, svc)
				}
				require.Equal(t, replicas, answer, "%s: %s %s reaches every replica of %s", name, variable, host, peer)
			}
			example := "\n" + secret + "=\n"
			require.Contains(t, string(envExample(t)), example, "no client secret in the example: the issuer makes it")
		} else {
			require.NotContains(t, s.Environment, "AUTH_CLIENT_SECRET", "%s: only %v call another service", name, slices.Sorted(maps.Keys(callers)))
			for _, other := range callers {
				for variable := range other.addrs {
					require.NotContains(t, s.Environment, variable, "%s: only a caller names its peers", name)
				}
			}
		}
	}
	example := envExample(t)
	require.Contains(t, string(example), "\nENCRYPTION_KEYS=\n", "no key in the example: each installation generates its own")
	require.Contains(t, string(example), "\nHASH_KEY=\n")
	require.Contains(t, string(example), "\nDISPATCH_CLIENT_SECRET=\n", "no client secret in the example: the issuer makes it")
	require.Contains(t, string(example), "\nINTAKE_CLIENT_SECRET=\n", "no client secret in the example: the issuer makes it")
	require.Equal(t, map[string]int{"intake": 1, "scheduler": 2, "dispatch": 2, "feedback": 1, "analytics": 1, console: 1}, replicas)

	conf, err := os.ReadFile("compose/nats.conf")
	require.NoError(t, err)
	require.Regexp(t, `(?m)^\s*sync_interval:\s*always\s*$`, string(conf))
	require.Contains(t, string(conf), "cluster {")

	prom, err := os.ReadFile("compose/prometheus.yml")
	require.NoError(t, err)
	for _, target := range []string{"intake:8001", "scheduler-1:8002", "scheduler-2:8002", "dispatch-1:8003", "dispatch-2:8003", "feedback:8004", "analytics:8005"} {
		require.Contains(t, string(prom), target)
	}
}

// exported are the metrics the services export: pkg/app and pkg/grpcserver
// for every service, the scheduler's due lag and failures, analytics' breach
// counter and refused rebuilds.
var exported = []string{"huifang_ready", "huifang_build_info", "huifang_outbox_pending", "huifang_consumer_pending",
	"huifang_consumer_ack_pending", "huifang_consumer_redelivered", "huifang_grpc_requests_total",
	"huifang_outbox_quarantined", "huifang_dependency_up", "huifang_dependency_down_seconds",
	"huifang_scheduler_due_lag_seconds", "huifang_scheduler_fire_failures_total", "huifang_scheduler_failed_visits",
	"huifang_target_breaches_total", "huifang_analytics_rebuild_refused",
	"huifang_retention_last_success_timestamp_seconds", "huifang_retention_seconds", "huifang_retention_purged_total"}

var metricRE = regexp.MustCompile(`\bhuifang_[a-z_]+\b`)

func TestAlertsAndDashboard(t *testing.T) {
	b, err := os.ReadFile("observability/alerts.yml")
	require.NoError(t, err)
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&rules), "alerts.yml has the rule file's shape")
	names := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert)
			require.False(t, names[r.Alert], "alert %s defined twice", r.Alert)
			names[r.Alert] = true
			require.NotEmpty(t, r.Expr, r.Alert)
			require.Contains(t, []string{"page", "ticket"}, r.Labels["severity"], r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			if r.For != "" {
				_, err := time.ParseDuration(r.For)
				require.NoError(t, err, r.Alert)
			}
			for _, m := range metricRE.FindAllString(r.Expr, -1) {
				require.True(t, slices.Contains(exported, m), "%s uses unknown metric %s", r.Alert, m)
			}
		}
	}
	for _, want := range []string{"HuifangConsumerLag", "HuifangOutboxBacklog", "HuifangDueVisitLag", "HuifangTargetBreached"} {
		require.True(t, names[want], "alert %s", want)
	}

	dash, err := os.ReadFile("observability/grafana/dashboards/huifang.json")
	require.NoError(t, err)
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(dash, &d))
	require.NotEmpty(t, d.UID)
	require.NotEmpty(t, d.Panels)
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, m := range metricRE.FindAllString(tg.Expr, -1) {
				require.True(t, slices.Contains(exported, m), "panel %q uses unknown metric %s", p.Title, m)
			}
		}
	}
}

// The Dockerfile builds a static binary into a distroless image that runs as
// a non-root user and checks its own health; every file it copies exists for
// each service and is not excluded by .dockerignore. (No Docker engine runs
// where the tests do; `make images` builds the images where one does.)
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	require.NoError(t, err)
	df := string(b)
	for _, want := range []string{
		"FROM golang:",
		"AS build",
		"CGO_ENABLED=0",
		"-X github.com/huifang/huifang/pkg/app.version=${VERSION}",
		"-X github.com/huifang/huifang/pkg/app.commit=${COMMIT}",
		"FROM gcr.io/distroless/static-debian12:nonroot",
		"USER 65532:65532",
		`HEALTHCHECK`,
		`CMD ["/huifang", "--healthcheck"]`,
		`ENTRYPOINT ["/huifang"]`,
	} {
		require.Contains(t, df, want)
	}
	ignore, err := os.ReadFile("../.dockerignore")
	require.NoError(t, err)
	copyRE := regexp.MustCompile(`(?m)^COPY (?:--from=\S+ )?(.+) \S+$`)
	for _, svc := range append(slices.Collect(maps.Keys(services)), console) {
		for _, m := range copyRE.FindAllStringSubmatch(df, -1) {
			if strings.Contains(m[0], "--from=") {
				continue
			}
			for _, src := range strings.Fields(m[1]) {
				src = strings.ReplaceAll(src, "${SERVICE}", svc)
				_, err := os.Stat(filepath.Join("..", src))
				require.NoError(t, err, "COPY %s for %s", src, svc)
				top := strings.Split(strings.TrimSuffix(src, "/"), "/")[0]
				require.NotRegexp(t, `(?m)^`+regexp.QuoteMeta(top)+`/?$`, string(ignore), ".dockerignore excludes %s", top)
			}
		}
	}
}

// TestComposeNATSUsers loads compose/nats.conf as nats-server does and
// checks that each service's user and the integrator's have exactly the
// permissions of pkg/stream, and that every service connects as its own.
func TestComposeNATSUsers(t *testing.T) {
	t.Setenv("NATS_SERVER_NAME", "nats-1")
	for _, u := range append(stream.Services(), "erp") {
		t.Setenv("NATS_"+strings.ToUpper(u)+"_PASSWORD", "pw-"+u)
	}
	opts, err := natsserver.ProcessConfigFile("compose/nats.conf")
	require.NoError(t, err)
	got := map[string]stream.Permissions{}
	for _, u := range opts.Users {
		require.Equal(t, "pw-"+u.Username, u.Password, "%s's password comes from the environment", u.Username)
		require.NotNil(t, u.Permissions, u.Username)
		got[u.Username] = stream.Permissions{Publish: u.Permissions.Publish.Allow, Subscribe: u.Permissions.Subscribe.Allow}
	}
	want := map[string]stream.Permissions{"erp": stream.IntegratorPermissions()}
	for _, svc := range stream.Services() {
		want[svc] = stream.ServicePermissions(svc)
	}
	require.Equal(t, want, got)

	for name, s := range composeFile(t).Services {
		image, _, _ := strings.Cut(s.Image, ":")
		svc, ok := strings.CutPrefix(image, "huifang/")
		if !ok || svc == console {
			continue
		}
		require.Equal(t, svc, s.Environment["NATS_USER"], name)
		require.Contains(t, s.Environment["NATS_PASSWORD"], "${NATS_"+strings.ToUpper(svc)+"_PASSWORD:?", name)
	}
}

// TestNATSHelmUsers: both Helm values files give each service's user and
// the integrator's exactly the permissions of pkg/stream, with passwords
// from Secret huifang-nats-users; production serves clients over TLS.
func TestNATSHelmUsers(t *testing.T) {
	want := map[string]stream.Permissions{"erp": stream.IntegratorPermissions()}
	for _, svc := range stream.Services() {
		want[svc] = stream.ServicePermissions(svc)
	}
	for _, file := range []string{"k8s/nats/values.yaml", "k8s/nats/values-dev.yaml"} {
		t.Run(file, func(t *testing.T) {
			var v struct {
				Config struct {
					Merge struct {
						Authorization struct {
							Users []struct {
								User        string `yaml:"user"`
								Password    string `yaml:"password"`
								Permissions struct {
									Publish   struct{ Allow []string } `yaml:"publish"`
									Subscribe struct{ Allow []string } `yaml:"subscribe"`
								} `yaml:"permissions"`
							} `yaml:"users"`
						} `yaml:"authorization"`
					} `yaml:"merge"`
					NATS struct {
						TLS struct {
							Enabled    bool   `yaml:"enabled"`
							SecretName string `yaml:"secretName"`
						} `yaml:"tls"`
					} `yaml:"nats"`
				} `yaml:"config"`
				Container struct {
					Env map[string]struct {
						ValueFrom struct {
							SecretKeyRef struct{ Name, Key string } `yaml:"secretKeyRef"`
						} `yaml:"valueFrom"`
					} `yaml:"env"`
				} `yaml:"container"`
			}
			b, err := os.ReadFile(file)
			require.NoError(t, err)
			require.NoError(t, yaml.Unmarshal(b, &v))
			got := map[string]stream.Permissions{}
			for _, u := range v.Config.Merge.Authorization.Users {
				got[u.User] = stream.Permissions{Publish: u.Permissions.Publish.Allow, Subscribe: u.Permissions.Subscribe.Allow}
				variable := "NATS_" + strings.ToUpper(u.User) + "_PASSWORD"
				require.Equal(t, "<< $"+variable+" >>", u.Password, u.User)
				ref := v.Container.Env[variable].ValueFrom.SecretKeyRef
				require.Equal(t, "huifang-nats-users", ref.Name, variable)
				require.Equal(t, u.User, ref.Key, variable)
			}
			require.Equal(t, want, got)
			if file == "k8s/nats/values.yaml" {
				require.True(t, v.Config.NATS.TLS.Enabled, "production NATS serves clients over TLS")
				require.NotEmpty(t, v.Config.NATS.TLS.SecretName)
			}
		})
	}
}

// compose is what the tests read of compose/compose.yaml.
type compose struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Environment map[string]string `yaml:"environment"`
	Healthcheck map[string]any    `yaml:"healthcheck"`
	Build       map[string]any    `yaml:"build"`
	// Networks: a list of names, or a map of name to its settings.
	Networks any `yaml:"networks"`
}

// answering are the compose services that answer to host (by name or
// network alias), and the replicas of peer (its image), both sorted.
func (c compose) answering(host, peer string) (answer, replicas []string) {
	for other, o := range c.Services {
		if strings.HasPrefix(o.Image, "huifang/"+peer+":") {
			replicas = append(replicas, other)
		}
		if other == host || slices.Contains(o.aliases(), host) {
			answer = append(answer, other)
		}
	}
	slices.Sort(answer)
	slices.Sort(replicas)
	return answer, replicas
}

// aliases are the other names the service answers to on its networks.
func (s composeService) aliases() []string {
	networks, _ := s.Networks.(map[string]any)
	var out []string
	for _, n := range networks {
		settings, _ := n.(map[string]any)
		list, _ := settings["aliases"].([]any)
		for _, a := range list {
			out = append(out, fmt.Sprint(a))
		}
	}
	return out
}

func envExample(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("compose/env.example")
	require.NoError(t, err)
	return b
}

func composeFile(t *testing.T) compose {
	t.Helper()
	b, err := os.ReadFile("compose/compose.yaml")
	require.NoError(t, err)
	var c compose
	require.NoError(t, yaml.Unmarshal(b, &c))
	return c
}

// covering are the PodDisruptionBudgets that select pods with podLabels.
func covering(t *testing.T, r rendered, podLabels labels.Set) []*policyv1.PodDisruptionBudget {
	t.Helper()
	var out []*policyv1.PodDisruptionBudget
	for _, p := range r.pdbs {
		s, err := metaSelector(p.Spec.Selector)
		require.NoError(t, err)
		if s.Matches(podLabels) {
			out = append(out, p)
		}
	}
	return out
}

// selecting are the NetworkPolicies that select pods with podLabels, and
// whether they restrict the pods' traffic in and out.
func selecting(t *testing.T, r rendered, podLabels labels.Set) (policies []*networkingv1.NetworkPolicy, ingress, egress bool) {
	t.Helper()
	for _, np := range r.policies {
		s, err := metaSelector(&np.Spec.PodSelector)
		require.NoError(t, err)
		if !s.Matches(podLabels) {
			continue
		}
		policies = append(policies, np)
		for _, pt := range np.Spec.PolicyTypes {
			ingress = ingress || pt == networkingv1.PolicyTypeIngress
			egress = egress || pt == networkingv1.PolicyTypeEgress
		}
	}
	return policies, ingress, egress
}

// checkConsole: the console runs like the services (non-root, read-only,
// probes, a disruption budget, rolling updates that never lower capacity)
// but holds no database, NATS or client secret; it serves HTTP only, reads
// SESSION_KEY from its Secret (never a value in the manifests), names the
// five services' gRPC ports through their Services, and, in production, is
// reached over HTTPS and checks the services' certificate.
func checkConsole(t *testing.T, overlay string, r rendered) {
	d := r.deployments[console]
	require.NotNil(t, d, "Deployment console")
	spec := d.Spec.Template.Spec
	podLabels := labels.Set(d.Spec.Template.Labels)
	require.True(t, labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(podLabels))
	require.NotEqual(t, "service", podLabels["app.kubernetes.io/component"], "the services' policies (NATS, Postgres) do not apply to the console")
	require.Zero(t, d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue(), "a rollout never lowers capacity")
	require.True(t, *spec.SecurityContext.RunAsNonRoot)
	require.False(t, *spec.AutomountServiceAccountToken)
	require.Empty(t, spec.InitContainers, "no migration: the console keeps no data")
	require.Len(t, spec.Containers, 1)
	c := spec.Containers[0]
	image, tag, ok := strings.Cut(c.Image, ":")
	require.True(t, ok, "image %s has a tag", c.Image)
	require.Equal(t, "huifang/console", image)
	if overlay == "prod" {
		require.NotContains(t, []string{"latest", "dev"}, tag, "production images are pinned")
		require.GreaterOrEqual(t, *d.Spec.Replicas, int32(2), "production runs the console twice")
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		require.Contains(t, c.Resources.Requests, res)
		require.Contains(t, c.Resources.Limits, res)
	}
	require.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	require.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
	require.Equal(t, []corev1.Capability{"ALL"}, c.SecurityContext.Capabilities.Drop)
	named := map[string]int32{}
	for _, p := range c.Ports {
		named[p.Name] = p.ContainerPort
	}
	require.Equal(t, map[string]int32{"http": consoleHTTP}, named, "HTTP only")
	require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	require.Equal(t, intstr.FromString("http"), c.ReadinessProbe.HTTPGet.Port)

	// Its variables: from the container and the ConfigMaps it reads.
	env := map[string]corev1.EnvVar{}
	for _, from := range c.EnvFrom {
		require.NotNil(t, from.ConfigMapRef, "the console reads ConfigMaps only as a whole")
		cm := r.configMaps[from.ConfigMapRef.Name]
		require.NotNil(t, cm, "ConfigMap %s", from.ConfigMapRef.Name)
		for k, v := range cm.Data {
			env[k] = corev1.EnvVar{Name: k, Value: v}
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	for _, v := range []string{"DATABASE_URL", "NATS_URL", "NATS_USER", "NATS_PASSWORD", "AUTH_CLIENT_SECRET", "DEV_MODE", "GRPC_ADDR"} {
		require.NotContains(t, envNames(c), v, "the console has no %s", v)
	}
	require.Equal(t, fmt.Sprintf(":%d", consoleHTTP), env["HTTP_ADDR"].Value)
	require.True(t, strings.HasPrefix(env["AUTH_ISSUER"].Value, "https://"))
	require.NotEmpty(t, env["AUTH_CLIENT_ID"].Value, "the console's public client at the issuer")
	public := env["PUBLIC_URL"].Value
	if overlay == "prod" {
		require.True(t, strings.HasPrefix(public, "https://"), "production serves the console over HTTPS (__Host- cookies): %s", public)
	} else {
		require.NotEmpty(t, public)
	}
	key := env["SESSION_KEY"]
	require.Empty(t, key.Value, "SESSION_KEY: no value in the manifests")
	require.NotNil(t, key.ValueFrom)
	require.NotNil(t, key.ValueFrom.SecretKeyRef, "SESSION_KEY comes from a Secret")
	require.Equal(t, consoleSecret, key.ValueFrom.SecretKeyRef.Name)
	require.Equal(t, "session-key", key.ValueFrom.SecretKeyRef.Key)
	require.False(t, key.ValueFrom.SecretKeyRef.Optional != nil && *key.ValueFrom.SecretKeyRef.Optional, "SESSION_KEY is required")
	if sec, ok := r.secrets[consoleSecret]; ok {
		v := sec.Data["session-key"]
		if v == nil {
			v = []byte(sec.StringData["session-key"])
		}
		require.GreaterOrEqual(t, len(v), 64, "32 bytes, hex")
	} else {
		require.Contains(t, externalSecrets[overlay], consoleSecret)
	}
	for peer, ports := range services {
		variable := strings.ToUpper(peer) + "_ADDR"
		host, port, err := net.SplitHostPort(env[variable].Value)
		require.NoError(t, err, "console %s is host:port", variable)
		svc := r.services[host]
		require.NotNil(t, svc, "console %s names a Service", variable)
		require.True(t, labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(r.deployments[peer].Spec.Template.Labels)), "console %s reaches %s", variable, peer)
		require.Equal(t, fmt.Sprint(ports[0]), port, "console %s is %s's gRPC port", variable, peer)
	}
	if overlay == "prod" {
		m, secret, k, ok := mountedSecretFile(t, spec, c, env["GRPC_CA_FILE"].Value)
		require.True(t, ok, "prod: GRPC_CA_FILE is a file of a mounted Secret (the services serve gRPC over TLS)")
		require.Equal(t, grpcTLSSecret, secret.SecretName)
		require.Equal(t, "ca.crt", k)
		require.True(t, m.ReadOnly)
		require.NotContains(t, env, "GRPC_TLS_CERT", "the console serves no gRPC")
	}

	svc := r.services[console]
	require.NotNil(t, svc, "Service console")
	require.True(t, labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels))
	for _, p := range svc.Spec.Ports {
		require.Contains(t, named, p.TargetPort.String())
	}
	require.Len(t, covering(t, r, podLabels), 1, "one PodDisruptionBudget covers the console")
	if hpa := r.hpas[console]; hpa != nil {
		require.Equal(t, *d.Spec.Replicas, *hpa.Spec.MinReplicas)
	}
	policies, ingress, egress := selecting(t, r, podLabels)
	for _, np := range policies {
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				require.Equal(t, "http", p.Port.String(), "policy %s: only the console's HTTP port takes traffic", np.Name)
			}
		}
	}
	require.True(t, ingress && egress, "NetworkPolicies restrict the console's traffic both ways")
}

// The compose file runs the console beside the services: its session key
// and issuer required, the services' gRPC ports by the names every replica
// answers to, no database or NATS, scraped by Prometheus.
func TestComposeConsole(t *testing.T) {
	c := composeFile(t)
	s, ok := c.Services[console]
	require.True(t, ok, "compose runs the console")
	require.True(t, strings.HasPrefix(s.Image, "huifang/console:"), s.Image)
	args := s.Build["args"].(map[string]any)
	require.Equal(t, console, args["SERVICE"])
	require.Equal(t, fmt.Sprint(consoleHTTP), args["HTTP_PORT"])
	require.NotContains(t, args, "GRPC_PORT", "the console serves no gRPC")
	env := s.Environment
	require.Equal(t, fmt.Sprintf(":%d", consoleHTTP), env["HTTP_ADDR"])
	require.Contains(t, env["AUTH_ISSUER"], "${AUTH_ISSUER:?", "the issuer is required")
	require.Contains(t, env["SESSION_KEY"], "${CONSOLE_SESSION_KEY:?", "the session key is required")
	require.Contains(t, env["PUBLIC_URL"], "${CONSOLE_PUBLIC_URL")
	require.Contains(t, env["AUTH_CLIENT_ID"], "${CONSOLE_CLIENT_ID")
	for _, v := range []string{"DATABASE_URL", "NATS_URL", "NATS_USER", "NATS_PASSWORD", "AUTH_CLIENT_SECRET", "DEV_MODE"} {
		require.NotContains(t, env, v, "the console has no %s", v)
	}
	for peer, ports := range services {
		variable := strings.ToUpper(peer) + "_ADDR"
		host, port, err := net.SplitHostPort(env[variable])
		require.NoError(t, err, "console %s is host:port", variable)
		require.Equal(t, fmt.Sprint(ports[0]), port, "console %s is %s's gRPC port", variable, peer)
		answer, replicas := c.answering(host, peer)
		require.Equal(t, replicas, answer, "console %s %s reaches every replica of %s, and nothing else", variable, host, peer)
	}
	example := string(envExample(t))
	require.Contains(t, example, "\nCONSOLE_SESSION_KEY=\n", "no session key in the example: each installation generates its own")
	require.Contains(t, example, "\nCONSOLE_PUBLIC_URL=")
	prom, err := os.ReadFile("compose/prometheus.yml")
	require.NoError(t, err)
	require.Contains(t, string(prom), fmt.Sprintf("console:%d", consoleHTTP))
}
