package diffusion_test

import (
	"math"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/backend"
	"github.com/godiffusion/godiffusion/diffusion"
	"github.com/godiffusion/godiffusion/experiment"
	"github.com/godiffusion/godiffusion/layers"
)

// TestShardedUNetMatchesSingleGraph trains the tiny U-Net from a fresh store with the
// single-graph step and with 2 concurrent shards: the weights are initialised from the random
// state before the step's noise is drawn in both, so losses and weights agree up to rounding.
func TestShardedUNetMatchesSingleGraph(t *testing.T) {
	be, err := backend.New()
	if err != nil {
		t.Fatal(err)
	}
	s, _ := diffusion.ScheduleByName(diffusion.ScheduleScaledLinear, 200)
	x := randomImages(4, 32)
	train := func(parallel int) ([]float64, *model.Store) {
		store := model.NewStore()
		tr, err := diffusion.NewTrainer(be, store, s, experiment.Denoiser(layers.Tiny()),
			diffusion.TrainConfig{Seed: 1, LearningRate: 1e-3, EMADecay: 0.99, Parallel: parallel})
		if err != nil {
			t.Fatal(err)
		}
		var losses []float64
		for range 3 {
			loss, err := tr.Step(x)
			if err != nil {
				t.Fatal(err)
			}
			losses = append(losses, loss)
		}
		return losses, store
	}
	wantLosses, want := train(1)
	losses, got := train(2)
	for i := range losses {
		if math.Abs(losses[i]-wantLosses[i]) > 1e-4*wantLosses[i] {
			t.Errorf("step %d: loss %g with 2 shards, %g with one graph", i+1, losses[i], wantLosses[i])
		}
	}
	worst, n := 0.0, 0
	for v := range want.IterVariables() {
		if v.DType() != dtypes.Float32 {
			continue
		}
		a := tensors.MustCopyFlatData[float32](v.MustValue())
		b := tensors.MustCopyFlatData[float32](got.GetVariable(v.Path()).MustValue())
		for i := range a {
			worst = max(worst, math.Abs(float64(a[i]-b[i]))/(1e-3+math.Abs(float64(a[i]))))
		}
		n++
	}
	if n < 50 || worst > 1e-3 {
		t.Errorf("%d float variables compared, worst relative difference %g (want <= 1e-3)", n, worst)
	}
}
