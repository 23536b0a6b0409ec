package issuer_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/huifang/huifang/pkg/auth"
	"github.com/huifang/huifang/pkg/issuer"
)

// TestKeysSurviveARestart: a development issuer that loads the keys it
// saved keeps accepting the tokens it wrote before.
func TestKeysSurviveARestart(t *testing.T) {
	first, err := issuer.Listen("127.0.0.1:0", "huifang")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := first.SaveKeys(path); err != nil {
		t.Fatal(err)
	}
	raw, err := first.Mint(issuer.Staff("default", "a-1"))
	if err != nil {
		t.Fatal(err)
	}
	addr := first.URL()[len("http://"):]
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second, err := issuer.Listen(addr, "huifang")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Close() })
	v, err := auth.NewVerifier(context.Background(), second.Config())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), raw); err == nil {
		t.Fatal("a token of the old keys verified before they were loaded")
	}
	if err := second.LoadKeys(path); err != nil {
		t.Fatal(err)
	}
	v, err = auth.NewVerifier(context.Background(), second.Config())
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("the old token after loading the keys: %v", err)
	}
	if p.AgentID != "a-1" || !p.Has(auth.TenantAdmin) || p.Has(auth.PlatformOperator) {
		t.Fatalf("staff principal %+v: want agent a-1 with the tenant roles and not platform_operator", p)
	}
}
