// Command install_pjrt installs an XLA PJRT plugin for GoMLX's XLA backend, with the installer of
// the go-xla version this module builds with (github.com/gomlx/go-xla/installer, pinned in go.mod),
// so the plugin's files land where that version's loader looks for them. It needs the internet.
//
//	go run ./scripts/install_pjrt                                  # CUDA 13 plugin into ~/.local/lib/go-xla
//	go run ./scripts/install_pjrt --plugin cuda12                  # for NVIDIA drivers older than CUDA 13's (580)
//	sudo env PATH="$PATH" go run ./scripts/install_pjrt --path /usr/local/lib/go-xla   # for every user
//	go run ./scripts/install_pjrt --plugin cpu                     # XLA on the CPU (GOMLX_BACKEND=xla:cpu)
//
// The CUDA plugins are JAX's (pypi.org packages jax-cuda13-pjrt or jax-cuda12-pjrt, "latest" or
// --version), with the NVIDIA libraries they depend on (cuBLAS, cuDNN, ...) in <path>/nvidia/; only
// the NVIDIA driver must already be installed. Unlike GoMLX's auto-install, it installs whether or
// not a GPU is visible, so it also works while a container image is built. Then run with
// GOMLX_BACKEND=xla:cuda (see the README's GPU section).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/gomlx/go-xla/installer"
)

// plugins are the values of --plugin.
var plugins = []string{"cuda13", "cuda12", "cpu"}

type options struct {
	plugin, path, version string
	cache                 bool
	verbosity             int
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("install_pjrt", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./scripts/install_pjrt [flags]\n\n"+
			"Installs an XLA PJRT plugin (CUDA or CPU) for GoMLX with go-xla's installer.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.plugin, "plugin", "cuda13", "plugin: cuda13 (NVIDIA driver >= 580), cuda12 (older drivers) or cpu")
	fs.StringVar(&o.path, "path", "~/.local/lib/go-xla", "folder to install into; its name must be go-xla. "+
		"~/.local/lib/go-xla and /usr/local/lib/go-xla are searched by default; for another, set "+
		"PJRT_PLUGIN_LIBRARY_PATH to it (CPU) or to its nvidia/ subfolder (CUDA)")
	fs.StringVar(&o.version, "version", "latest", "CUDA: the JAX release whose plugin to install (e.g. 0.8.1), or latest. "+
		"CPU: ignored, the version go-xla was tested with is installed")
	fs.BoolVar(&o.cache, "cache", true, "keep the downloaded files in the user cache folder and reuse them")
	fs.IntVar(&o.verbosity, "verbosity", int(installer.Normal), "0 quiet, 1 normal, 2 verbose")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q (all options are flags, see --help)", fs.Args())
	}
	var errs []error
	if !slices.Contains(plugins, o.plugin) {
		errs = append(errs, fmt.Errorf("--plugin=%q: use one of %q", o.plugin, plugins))
	}
	// The CUDA installer links libcublas into the folder above <path> as ./go-xla/nvidia/...
	if filepath.Base(filepath.Clean(o.path)) != "go-xla" {
		errs = append(errs, fmt.Errorf("--path=%q: the folder must be named go-xla (e.g. ~/.local/lib/go-xla)", o.path))
	}
	if o.version == "" {
		errs = append(errs, errors.New("--version must not be empty (latest: the newest)"))
	}
	if o.verbosity < int(installer.Quiet) || o.verbosity > int(installer.Verbose) {
		errs = append(errs, fmt.Errorf("--verbosity=%d: use 0, 1 or 2", o.verbosity))
	}
	return o, errors.Join(errs...)
}

func run(o *options, stdout io.Writer) error {
	path, err := installer.ReplaceTildeInDir(o.path)
	if err != nil {
		return err
	}
	verbosity := installer.VerbosityLevel(o.verbosity)
	if o.plugin == "cpu" {
		if err := installer.CPUAutoInstall(path, o.cache, verbosity); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "install_pjrt: CPU plugin in %s; run with GOMLX_BACKEND=xla:cpu\n", path)
		return nil
	}
	if err := installer.CudaInstall(o.plugin, o.version, path, o.cache, verbosity); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "install_pjrt: %s plugin and NVIDIA libraries in %s; run with GOMLX_BACKEND=xla:cuda\n",
		o.plugin, filepath.Join(path, "nvidia"))
	return nil
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return
	case err != nil:
		fmt.Fprintf(os.Stderr, "install_pjrt: %v\n", err)
		os.Exit(2)
	}
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "install_pjrt: %v\n(the CUDA plugins come from pypi.org, the CPU one from github.com)\n", err)
		os.Exit(1)
	}
}
