package diffusion_test

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/backend"
	"github.com/godiffusion/godiffusion/diffusion"
	"github.com/godiffusion/godiffusion/experiment"
	"github.com/godiffusion/godiffusion/layers"
)

// shapesBatch draws n simple 32x32 pictures in [-1, 1]: a bright disc or square on black,
// at a few positions, so a small network can memorise them.
func shapesBatch(n int) *tensors.Tensor {
	const size = 32
	v := make([]float32, n*size*size)
	for i := range n {
		cx, cy, r := 8+float64(5*i%16), 10+float64(3*i%12), 5+float64(i%3)
		for y := range size {
			for x := range size {
				dx, dy := float64(x)-cx, float64(y)-cy
				inside := dx*dx+dy*dy <= r*r
				if i%2 == 1 {
					inside = math.Abs(dx) <= r && math.Abs(dy) <= r
				}
				val := float32(-1)
				if inside {
					val = 1
				}
				v[(i*size+y)*size+x] = val
			}
		}
	}
	return tensors.FromFlatDataAndDimensions(v, n, size, size, 1)
}

// TestTinyUNetOverfits trains the tiny preset on one small batch: the noise-prediction loss must
// fall by a large factor, showing that the U-Net, its gradients and the training step fit together.
func TestTinyUNetOverfits(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few hundred steps")
	}
	be, err := backend.New()
	if err != nil {
		t.Fatal(err)
	}
	s, _ := diffusion.ScheduleByName(diffusion.ScheduleScaledLinear, diffusion.DefaultT)
	tr, err := diffusion.NewTrainer(be, model.NewStore(), s, experiment.Denoiser(layers.Tiny()),
		diffusion.TrainConfig{LearningRate: 3e-3, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	x := shapesBatch(4)
	const steps, window = 300, 25
	var first, last float64
	for step := range steps {
		loss, err := tr.Step(x)
		if err != nil {
			t.Fatal(err)
		}
		if step < window {
			first += loss / window
		}
		if step >= steps-window {
			last += loss / window
		}
	}
	t.Logf("mean loss over the first %d steps %.4f, over the last %d steps %.4f (%.1fx lower)", window, first, window, last, first/last)
	if first < 0.3 {
		t.Errorf("initial loss %.4f: expected of order 1 from the LeCun initialisation", first)
	}
	if last > first/5 {
		t.Errorf("loss fell only from %.4f to %.4f, want at least 5x", first, last)
	}
}
