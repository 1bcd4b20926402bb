package layers

import (
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
)

// countParams builds cfg's U-Net once (graph only, batch 1, nothing compiled or run) and counts the
// trainable parameters.
func countParams(t *testing.T, cfg UNetConfig) int {
	t.Helper()
	store := model.NewStore()
	g := graph.NewGraph(getBackend(t), "count")
	x := graph.Parameter(g, "x", shapes.Make(dtypes.Float32, 1, cfg.ImageSize, cfg.ImageSize, 1))
	ts := graph.Parameter(g, "t", shapes.Make(dtypes.Int32, 1))
	out := UNet(store.RootScope(), x, ts, cfg)
	if !out.Shape().Equal(x.Shape()) {
		t.Errorf("output shape %s, want %s", out.Shape(), x.Shape())
	}
	return NumTrainableParameters(store)
}

func TestParameterCounts(t *testing.T) {
	if got, want := countParams(t, Tutorial()), 12_816_361; got != want {
		t.Errorf("Tutorial() parameters = %d, want %d (the Flax tutorial's)", got, want)
	}
	// The PyTorch mirror of the pre-activation CPU() network (scripts/bench/pytorch_unet.py) counts the same.
	if got, want := countParams(t, CPU()), 3_123_097; got != want {
		t.Errorf("CPU() parameters = %d, want %d (the PyTorch mirror's)", got, want)
	}
	t.Logf("Tiny() parameters: %d", countParams(t, Tiny()))
}

// TestPatchParameterCounts checks that patching only widens the stem's input and the output
// convolution: p^2 input channels for the 7x7 stem and p^2 output channels (and biases) for the 1x1 output.
func TestPatchParameterCounts(t *testing.T) {
	plain := CPU()
	plain.AttentionResolutions = nil // Resolutions move with patching; the middle attention does not.
	patched := plain
	patched.PatchSize = 2
	extra := patched.Patch()*patched.Patch() - 1
	want := countParams(t, plain) + 7*7*extra*plain.StemWidth() + extra*(plain.Widths()[0]+1)
	if got := countParams(t, patched); got != want {
		t.Errorf("patched parameters = %d, want %d", got, want)
	}
}
