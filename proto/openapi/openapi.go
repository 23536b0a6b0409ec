// Package openapi holds the OpenAPI v2 documents of the services' HTTP/JSON
// surface, generated from the .proto files by protoc-gen-openapiv2 (make
// generate; never edited by hand): huifang/<service>/v1/<service>.swagger.json.
// Each service serves its own at GET /openapi.json on its HTTP port.
package openapi

import (
	"embed"
	"fmt"
)

//go:embed huifang/*/v1/*.swagger.json
var docs embed.FS

// Document returns the OpenAPI v2 document of a service ("intake",
// "scheduler", "dispatch", "feedback", "analytics").
func Document(service string) ([]byte, error) {
	b, err := docs.ReadFile("huifang/" + service + "/v1/" + service + ".swagger.json")
	if err != nil {
		return nil, fmt.Errorf("openapi: no document for %q: %w", service, err)
	}
	return b, nil
}
