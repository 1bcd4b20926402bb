// Package backend chooses the GoMLX compute backend: XLA where a PJRT plugin is installed, the pure Go backend otherwise.
package backend

import (
	"fmt"
	"os"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend" // Pure Go backend: always available.
	"github.com/gomlx/go-xla/compute/xla"
)

// New returns the compute backend to run graphs on, and a short description of it.
//
// The choice, in order:
//  1. $GOMLX_BACKEND when set (e.g. "go", "xla:cpu", "xla:cuda"), exactly as GoMLX reads it.
//  2. XLA when a PJRT plugin is already installed (found through $PJRT_PLUGIN_LIBRARY_PATH or
//     the standard plugin folders). GoMLX's automatic plugin download is disabled: it needs the
//     internet and would hang or fail on offline machines.
//  3. The pure Go backend otherwise.
func New() (compute.Backend, error) {
	if cfg, ok := os.LookupEnv(compute.ConfigEnvVar); ok && cfg != "" {
		b, err := compute.NewWithConfig(cfg)
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
	return compute.NewWithConfig("go")
}
