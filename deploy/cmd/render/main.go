// Command render prints the manifests of a Kustomize overlay, as
// `kustomize build` would, without needing the kustomize binary:
//
//	go run ./deploy/cmd/render deploy/k8s/overlays/prod | kubectl apply -f -
//
// (`kubectl apply -k deploy/k8s/overlays/prod` does the same.)
package main

import (
	"fmt"
	"os"

	"github.com/huifang/huifang/deploy"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: render <overlay folder>")
		os.Exit(2)
	}
	_, all, err := deploy.Render(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_, _ = os.Stdout.Write(all)
}
