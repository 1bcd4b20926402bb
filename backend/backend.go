// Package backend chooses the engine that runs the GoMLX graphs: XLA where a PJRT plugin is
// installed (GPU), ONNX Runtime where its library is installed (fast CPU), GoMLX's pure Go backend
// otherwise (always available).
package backend

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	onnxbackend "github.com/gomlx/compute-onnx"
	"github.com/gomlx/compute-onnx/support/onnxruntime"
	_ "github.com/gomlx/compute/gobackend" // Pure Go backend: always available.
	"github.com/gomlx/go-xla/compute/xla"
	_ "github.com/gomlx/go-xla/compute/xla/autoinstall" // Plugin downloads for an explicit GOMLX_BACKEND=xla:...
	"github.com/gomlx/go-xla/pjrt"
)

// Engine names, as the prefixes of $GOMLX_BACKEND and the values Kind returns.
const (
	XLA  = "xla"
	ONNX = "onnx"
	Go   = "go"
)

// DefaultGoConfig is the Go backend configuration used when neither $GOMLX_BACKEND nor an
// installed engine chooses another backend.
const DefaultGoConfig = "go:ops_sequential"

// DefaultONNXConfig is the ONNX Runtime configuration of the automatic choice: the CPU provider,
// one thread per execution. A training step has many small operations that ONNX Runtime's
// threads share poorly; a batch cut in one shard per core trains faster (see Shards and
// docs/performance.md).
const DefaultONNXConfig = "onnx:cpu,intra_op_num_threads=1"

// New returns the compute backend to run graphs on; its Name and Description say which it is.
//
// The choice, in order:
//  1. $GOMLX_BACKEND when set (e.g. "go", "onnx", "onnx:cpu", "xla:cuda"), exactly as GoMLX reads it.
//     There GoMLX's own installers may download a missing PJRT plugin or ONNX Runtime library,
//     unless $GOMLX_NO_AUTO_INSTALL is set.
//  2. XLA when a PJRT plugin is installed (in $PJRT_PLUGIN_LIBRARY_PATH or the standard plugin
//     folders, see Installed): a GPU plugin before the CPU one.
//  3. ONNX Runtime (CPU) when its library is installed ($ONNXRUNTIME_SHARED_LIBRARY_PATH, or where
//     GoMLX's installer and scripts/setup.sh put it: ONNXLibraryPath).
//  4. The pure Go backend otherwise.
//
// The automatic choice (2-4) never downloads anything.
func New() (compute.Backend, error) {
	if cfg, ok := os.LookupEnv(compute.ConfigEnvVar); ok && cfg != "" {
		b, err := newWithConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("backend %s=%q: %w (unset %s for the automatic choice)",
				compute.ConfigEnvVar, cfg, err, compute.ConfigEnvVar)
		}
		return b, nil
	}
	if plugin := installedPlugin(); plugin != "" {
		if b, err := xla.New(plugin); err == nil {
			return b, nil
		}
	}
	if ONNXLibraryPath() != "" {
		if b, err := newWithConfig(DefaultONNXConfig); err == nil {
			return b, nil
		}
	}
	return compute.NewWithConfig(DefaultGoConfig)
}

// Kind tells which engine b is: XLA, ONNX or Go ("" for another backend).
func Kind(b compute.Backend) string {
	switch b.Name() {
	case "Go Backend":
		return Go
	case onnxbackend.BackendName:
		return ONNX
	case xla.BackendName:
		return XLA
	}
	return ""
}

// Installed lists the engines present on this machine, in the order New prefers them; Go is
// always last. Each entry is a $GOMLX_BACKEND value that selects that engine.
func Installed() []string {
	var configs []string
	if plugin := installedPlugin(); plugin != "" {
		configs = append(configs, XLA+":"+plugin)
	}
	if ONNXLibraryPath() != "" {
		configs = append(configs, DefaultONNXConfig)
	}
	return append(configs, DefaultGoConfig)
}

// NewWithConfig returns the backend of a $GOMLX_BACKEND value (e.g. one of Installed), with an
// unknown backend name returned as an error instead of a panic.
func NewWithConfig(cfg string) (compute.Backend, error) { return newWithConfig(cfg) }

// installedPlugin returns the name of an installed PJRT plugin ("cuda" before "cpu"), or "".
func installedPlugin() string {
	plugins := pjrt.AvailablePlugins() // Only looks; installs nothing.
	for _, name := range []string{"cuda", "rocm", "tpu", "cpu"} {
		if _, ok := plugins[name]; ok {
			return name
		}
	}
	for name := range plugins {
		return name
	}
	return ""
}

// ONNXLibraryPath returns the path of the installed ONNX Runtime library, or "" if there is none:
// $ONNXRUNTIME_SHARED_LIBRARY_PATH when set, else libonnxruntime.so in the folder GoMLX's
// installer uses (~/.local/lib/onnxruntime on Linux).
func ONNXLibraryPath() string {
	if p := os.Getenv("ONNXRUNTIME_SHARED_LIBRARY_PATH"); p != "" {
		if isFile(p) {
			return p
		}
		return ""
	}
	dir, err := onnxruntime.GetInstallPath()
	if err != nil {
		return ""
	}
	name, err := onnxruntime.GetLibFilename()
	if err != nil {
		return ""
	}
	if p := filepath.Join(dir, name); isFile(p) {
		return p
	}
	return ""
}

func isFile(p string) bool {
	info, err := os.Stat(p)
	return err == nil && !info.IsDir()
}

// Shards returns how many graph executions to run at once on b, e.g. the shards of a batch:
// GOMAXPROCS for the pure Go backend, which runs most operations on one core, and for ONNX Runtime
// on one thread per execution (as DefaultONNXConfig); 1 for engines that use every core inside
// one execution (XLA, ONNX Runtime with its own threads).
func Shards(b compute.Backend) int {
	if b == nil {
		return 1
	}
	switch Kind(b) {
	case Go:
		return max(1, runtime.GOMAXPROCS(0))
	case ONNX:
		singleThreaded.Lock()
		one := singleThreaded.backends[b]
		singleThreaded.Unlock()
		if one {
			return max(1, runtime.GOMAXPROCS(0))
		}
	}
	return 1
}

// singleThreaded records the ONNX Runtime backends created here with one thread per execution.
var singleThreaded = struct {
	sync.Mutex
	backends map[compute.Backend]bool
}{backends: map[compute.Backend]bool{}}

// newWithConfig is compute.NewWithConfig with its panic for an unknown backend name turned into an error.
func newWithConfig(cfg string) (b compute.Backend, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	b, err = compute.NewWithConfig(cfg)
	if err == nil && Kind(b) == ONNX && strings.Contains(strings.ReplaceAll(cfg, " ", ""), "intra_op_num_threads=1") {
		singleThreaded.Lock()
		singleThreaded.backends[b] = true
		singleThreaded.Unlock()
	}
	return b, err
}
