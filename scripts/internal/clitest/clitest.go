// Package clitest holds test support shared by the batch jobs' tests under scripts/.
package clitest

import (
	"testing"

	"github.com/gomlx/compute"

	"github.com/godiffusion/godiffusion/backend"
	"github.com/godiffusion/godiffusion/diffusion/mnist"
)

// MNISTBackend returns the project's default backend (backend.New) for a test that reads MNIST, and
// skips the test when the MNIST files cannot be found.
func MNISTBackend(t testing.TB) compute.Backend {
	t.Helper()
	if _, err := mnist.DefaultDir(); err != nil {
		t.Skipf("MNIST not available: %v", err)
	}
	b, err := backend.New()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
