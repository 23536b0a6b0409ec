// Package deploy renders Huifang's Kubernetes manifests (the Kustomize
// overlays under k8s/) offline and decodes them strictly into the
// Kubernetes API types, so that `make lint` catches a wrong field or type
// without a cluster and without downloading schemas.
package deploy

import (
	"fmt"
	"path/filepath"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Overlays are the Kustomize overlays shipped, by name (k8s/overlays/<name>).
func Overlays() []string { return []string{"dev", "prod"} }

// Object is one rendered manifest.
type Object struct {
	APIVersion string
	Kind       string
	Name       string
	Namespace  string
	YAML       []byte
}

// Render runs Kustomize on the overlay at dir (as `kustomize build dir`
// would) and returns the manifests, and all of them as one YAML stream.
func Render(dir string) ([]Object, []byte, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("deploy: %w", err)
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		return nil, nil, fmt.Errorf("deploy: kustomize %s: %w", dir, err)
	}
	var out []Object
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, nil, fmt.Errorf("deploy: %s/%s: %w", r.GetKind(), r.GetName(), err)
		}
		out = append(out, Object{APIVersion: r.GetApiVersion(), Kind: r.GetKind(), Name: r.GetName(), Namespace: r.GetNamespace(), YAML: y})
	}
	all, err := m.AsYaml()
	if err != nil {
		return nil, nil, fmt.Errorf("deploy: %w", err)
	}
	return out, all, nil
}
