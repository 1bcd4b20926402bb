// Package backend chooses the GoMLX compute backend: XLA where a PJRT plugin is installed, the pure Go backend otherwise.
package backend

import (
	"fmt"
	"os"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend" // Pure Go backend: always available.
	"github.com/gomlx/go-xla/compute/xla"
)

// DefaultGoConfig is the Go backend configuration used when neither $GOMLX_BACKEND nor a PJRT
// plugin chooses another backend.
const DefaultGoConfig = "go:ops_sequential"

// New returns the compute backend to run graphs on; its Name and Description say which it is.
//
// The choice, in order:
//  1. $GOMLX_BACKEND when set (e.g. "go", "xla:cpu", "xla:cuda"), exactly as GoMLX reads it.
//  2. XLA when a PJRT plugin is already installed (found through $PJRT_PLUGIN_LIBRARY_PATH or
//     the standard plugin folders). GoMLX's automatic plugin download is disabled: it needs the
//     internet and would hang or fail on offline machines.
//  3. The pure Go backend otherwise, with its operations run one after the other ("go:ops_sequential"):
//     compute v0.1.2's worker pool can deadlock when several operations that each want workers for a
//     matrix product run at once (seen with hand-written gradients); on 2 cores running operations
//     side by side gains little (training step time measured the same both ways).
func New() (compute.Backend, error) {
	if cfg, ok := os.LookupEnv(compute.ConfigEnvVar); ok && cfg != "" {
		b, err := newWithConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("backend %s=%q: %w (unset %s to fall back to the pure Go backend)",
				compute.ConfigEnvVar, cfg, err, compute.ConfigEnvVar)
		}
		return b, nil
	}
	xla.EnableAutoInstall(false)
	if plugins := xla.GetAvailablePlugins(); len(plugins) > 0 {
		if b, err := xla.New(""); err == nil {
			return b, nil
		}
	}
	return compute.NewWithConfig(DefaultGoConfig)
}

// newWithConfig is compute.NewWithConfig with its panic for an unknown backend name turned into an error.
func newWithConfig(cfg string) (b compute.Backend, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return compute.NewWithConfig(cfg)
}
