package backend

import (
	"strings"
	"testing"

	"github.com/gomlx/compute"
)

func TestNew(t *testing.T) {
	t.Setenv(compute.ConfigEnvVar, "")
	t.Setenv("PJRT_PLUGIN_LIBRARY_PATH", t.TempDir()) // No plugin there: the Go backend is chosen.
	b, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != "Go Backend" && !strings.Contains(strings.ToLower(b.Name()), "go") {
		t.Errorf("default backend %q, want the pure Go backend", b.Name())
	}
	t.Setenv(compute.ConfigEnvVar, "no-such-backend")
	if _, err := New(); err == nil || !strings.Contains(err.Error(), "no-such-backend") {
		t.Errorf("unknown $GOMLX_BACKEND: error %v, want one naming it", err)
	}
	t.Setenv(compute.ConfigEnvVar, "go")
	if b, err := New(); err != nil || !strings.Contains(strings.ToLower(b.Name()), "go") {
		t.Errorf("GOMLX_BACKEND=go: %v, %v", b, err)
	}
}
