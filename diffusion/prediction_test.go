package diffusion

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// TestPredictionRoundTrip checks that Estimates inverts Target for every prediction: a denoiser that
// outputs the exact target at x_t = a x0 + b ε gives back x0 and ε, at low and high noise (including the
// last step of the scaled-linear schedule, where a ≈ 0.0055).
func TestPredictionRoundTrip(t *testing.T) {
	s, _ := ScheduleByName(ScheduleScaledLinear, 200)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, pred := range Predictions {
		for _, step := range []int{0, 100, 199} {
			a, b := s.SqrtAlphaBars[step], s.SqrtOneMinusABar[step]
			x0, eps := make([]float64, 16), make([]float64, 16)
			for i := range x0 {
				x0[i], eps[i] = 2*rng.Float64()-1, rng.NormFloat64()
			}
			outs := MustExecOnceN(testBackend(), func(x0, eps *Node) []*Node {
				g := x0.Graph()
				ca, cb := Scalar(g, x0.DType(), a), Scalar(g, x0.DType(), b)
				xt := Add(Mul(ca, x0), Mul(cb, eps))
				gotX0, gotEps := pred.Estimates(pred.Target(x0, eps, ca, cb), xt, ca, cb)
				return []*Node{gotX0, gotEps}
			}, x0, eps)
			for k, want := range [][]float64{x0, eps} {
				got := tensors.MustCopyFlatData[float64](outs[k])
				for i := range want {
					if d := math.Abs(got[i] - want[i]); d > 1e-9 {
						t.Fatalf("%s at t=%d: estimate %d [%d] = %g, want %g", pred, step, k, i, got[i], want[i])
					}
				}
			}
		}
	}
}

func TestParsePrediction(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Prediction
		err  bool
	}{{"", PredictEpsilon, false}, {"epsilon", PredictEpsilon, false}, {"v", PredictV, false}, {"x0", PredictX0, false}, {"x_0", "", true}, {"sample", "", true}} {
		got, err := ParsePrediction(tc.name)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("ParsePrediction(%q) = %q, %v; want %q, error %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

// TestGeneratorRejectsUnknownPrediction: a Generator told an unknown prediction fails instead of
// sampling as if the denoiser predicted ε.
func TestGeneratorRejectsUnknownPrediction(t *testing.T) {
	s, _ := ScheduleByName(ScheduleLinear, 20)
	gen := NewGenerator(testBackend(), model.NewStore(), s, gaussianDenoiser(s, 0.3), 4, 4, 1)
	gen.Prediction = "sample"
	if _, err := gen.Sample(DDIM{Steps: 5}, SampleOptions{N: 2, Seed: 1}); err == nil || !strings.Contains(err.Error(), "unknown prediction") {
		t.Fatalf("Sample with prediction \"sample\": error %v, want one naming the unknown prediction", err)
	}
}

// TestSamplersAgreeAcrossPredictions: a denoiser that outputs the exact ε of gaussianDenoiser in the form
// of each prediction (its target for the x̂₀ implied by that ε) samples the same images as the ε denoiser,
// with DDIM (eta 0 and 1) and DDPM, from the same seed.
func TestSamplersAgreeAcrossPredictions(t *testing.T) {
	s, _ := ScheduleByName(ScheduleLinear, 20)
	eps := gaussianDenoiser(s, 0.3)
	as := func(pred Prediction) Denoiser {
		return func(scope *model.Scope, x, tt, _ *Node) *Node {
			a := gatherPerExample(s.SqrtAlphaBars, tt, x.Rank())
			b := gatherPerExample(s.SqrtOneMinusABar, tt, x.Rank())
			e := eps(scope, x, tt, nil)
			return pred.Target(Div(Sub(x, Mul(b, e)), a), e, a, b)
		}
	}
	sample := func(pred Prediction, smp Sampler) []float32 {
		gen := NewGenerator(testBackend(), model.NewStore(), s, as(pred), 4, 4, 1)
		gen.Prediction = pred
		res, err := gen.Sample(smp, SampleOptions{N: 3, Seed: 5})
		if err != nil {
			t.Fatal(err)
		}
		return tensors.MustCopyFlatData[float32](res.Images)
	}
	for _, smp := range []Sampler{DDIM{Steps: 5}, DDIM{Steps: 5, Eta: 1}, DDPM{}} {
		want := sample(PredictEpsilon, smp)
		for _, pred := range Predictions {
			got := sample(pred, smp)
			for i := range want {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*max(1, math.Abs(float64(want[i]))) {
					t.Fatalf("%s, %s: image value %d = %g, the ε denoiser's %g", smp, pred, i, got[i], want[i])
				}
			}
		}
	}
}
