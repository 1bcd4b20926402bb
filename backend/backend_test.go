package backend

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute"
)

// noEngines hides every installed engine from the automatic choice.
func noEngines(t *testing.T) {
	t.Setenv(compute.ConfigEnvVar, "")
	t.Setenv("PJRT_PLUGIN_LIBRARY_PATH", t.TempDir())                                            // No plugin there.
	t.Setenv("ONNXRUNTIME_SHARED_LIBRARY_PATH", filepath.Join(t.TempDir(), "libonnxruntime.so")) // No such file.
}

func TestNew(t *testing.T) {
	noEngines(t)
	b, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if Kind(b) != Go {
		t.Errorf("with no engine installed New chose %q, want the pure Go backend", b.Name())
	}
	if got := Installed(); !slices.Equal(got, []string{DefaultGoConfig}) {
		t.Errorf("Installed() = %q with no engine installed, want only %q", got, DefaultGoConfig)
	}
	t.Setenv(compute.ConfigEnvVar, "no-such-backend")
	if _, err := New(); err == nil || !strings.Contains(err.Error(), "no-such-backend") {
		t.Errorf("unknown $GOMLX_BACKEND: error %v, want one naming it", err)
	}
	t.Setenv(compute.ConfigEnvVar, "go")
	if b, err := New(); err != nil || Kind(b) != Go {
		t.Errorf("GOMLX_BACKEND=go: %v, %v", b, err)
	}
}

// TestONNXLibraryPath checks where an installed ONNX Runtime library is looked for.
func TestONNXLibraryPath(t *testing.T) {
	noEngines(t)
	if p := ONNXLibraryPath(); p != "" {
		t.Errorf("ONNXLibraryPath() = %q for a missing $ONNXRUNTIME_SHARED_LIBRARY_PATH, want \"\"", p)
	}
	lib := filepath.Join(t.TempDir(), "libonnxruntime.so")
	if err := os.WriteFile(lib, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ONNXRUNTIME_SHARED_LIBRARY_PATH", lib)
	if p := ONNXLibraryPath(); p != lib {
		t.Errorf("ONNXLibraryPath() = %q, want $ONNXRUNTIME_SHARED_LIBRARY_PATH %q", p, lib)
	}
	if got := Installed(); !slices.Equal(got, []string{DefaultONNXConfig, DefaultGoConfig}) {
		t.Errorf("Installed() = %q with a library present, want %q then %q", got, DefaultONNXConfig, DefaultGoConfig)
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("ONNXRUNTIME_SHARED_LIBRARY_PATH", "")
	if p := ONNXLibraryPath(); p != "" {
		t.Errorf("ONNXLibraryPath() = %q with an empty home, want \"\"", p)
	}
	installed := filepath.Join(home, ".local", "lib", "onnxruntime", "libonnxruntime.so")
	if err := os.MkdirAll(filepath.Dir(installed), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(installed, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if p := ONNXLibraryPath(); p != installed {
		t.Errorf("ONNXLibraryPath() = %q, want GoMLX's install folder %q", p, installed)
	}
}

// TestShards checks the default shard counts: one per core on the pure Go backend and on ONNX
// Runtime with one thread per execution, one shard where the engine uses every core itself.
func TestShards(t *testing.T) {
	if got := Shards(nil); got != 1 {
		t.Errorf("Shards(nil) = %d, want 1", got)
	}
	cases := []struct {
		cfg  string
		want int
	}{{"go", runtime.GOMAXPROCS(0)}, {DefaultONNXConfig, runtime.GOMAXPROCS(0)}, {"onnx:cpu", 1}}
	for _, c := range cases {
		if strings.HasPrefix(c.cfg, ONNX) && ONNXLibraryPath() == "" {
			t.Logf("%s: ONNX Runtime is not installed here", c.cfg)
			continue
		}
		b, err := NewWithConfig(c.cfg)
		if err != nil {
			t.Fatalf("%s: %v", c.cfg, err)
		}
		if got := Shards(b); got != c.want {
			t.Errorf("Shards(%s) = %d, want %d", c.cfg, got, c.want)
		}
	}
}
