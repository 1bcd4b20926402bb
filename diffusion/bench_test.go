package diffusion_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/backend"
	"github.com/godiffusion/godiffusion/diffusion"
	"github.com/godiffusion/godiffusion/experiment"
	"github.com/godiffusion/godiffusion/layers"
)

// Benchmarks of one training step and one sampler step, reported in images/s:
//
//	GOEXPERIMENT=simd go test ./diffusion -run '^$' -bench . -benchtime 3x

// randomImages returns n images of uniform values in [-1, 1].
func randomImages(n, size int) *tensors.Tensor {
	rng := rand.New(rand.NewPCG(1, 2))
	v := make([]float32, n*size*size)
	for i := range v {
		v[i] = float32(rng.Float64()*2 - 1)
	}
	return tensors.FromFlatDataAndDimensions(v, n, size, size, 1)
}

var benchPresets = []struct {
	name  string
	cfg   func() layers.UNetConfig
	batch []int
}{
	{"tiny", layers.Tiny, []int{64}},
	{"cpu", layers.CPU, []int{1, 16, 64}},
}

func BenchmarkTrainStep(b *testing.B) {
	be, err := backend.New()
	if err != nil {
		b.Fatal(err)
	}
	s, _ := diffusion.ScheduleByName(diffusion.ScheduleLinear, diffusion.DefaultT)
	for _, p := range benchPresets {
		for _, batch := range p.batch {
			b.Run(fmt.Sprintf("%s/batch=%d", p.name, batch), func(b *testing.B) {
				cfg := p.cfg()
				// With the moving average of the weights, as scripts/train by default (batch 16 is its default).
				tr, err := diffusion.NewTrainer(be, model.NewStore(), s, experiment.Denoiser(cfg), diffusion.TrainConfig{Seed: 1, EMADecay: 0.999})
				if err != nil {
					b.Fatal(err)
				}
				x := randomImages(batch, cfg.ImageSize)
				if _, err := tr.Step(x); err != nil { // Compiles.
					b.Fatal(err)
				}
				b.ResetTimer()
				for range b.N {
					if _, err := tr.Step(x); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "img/s")
			})
		}
	}
}

func BenchmarkSamplerStep(b *testing.B) {
	be, err := backend.New()
	if err != nil {
		b.Fatal(err)
	}
	s, _ := diffusion.ScheduleByName(diffusion.ScheduleLinear, diffusion.DefaultT)
	for _, p := range benchPresets {
		for _, batch := range p.batch {
			b.Run(fmt.Sprintf("%s/batch=%d", p.name, batch), func(b *testing.B) {
				cfg := p.cfg()
				gen := diffusion.NewGenerator(be, model.NewStore(), s, experiment.Denoiser(cfg), cfg.ImageSize, cfg.ImageSize, 1)
				// One DDIM step per image per call: S = 1.
				run := func() {
					if _, err := gen.Sample(diffusion.DDIM{Steps: 1}, diffusion.SampleOptions{N: batch, Seed: 1}); err != nil {
						b.Fatal(err)
					}
				}
				run() // Compiles and initialises.
				b.ResetTimer()
				for range b.N {
					run()
				}
				b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "img/s")
			})
		}
	}
}
