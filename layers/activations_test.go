package layers

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
)

// TestRationalActivations compares the multiply-add activations with Go's math package over a
// dense grid, in float32 as the models run.
func TestRationalActivations(t *testing.T) {
	xs := make([]float32, 0, 4001)
	for i := -2000; i <= 2000; i++ {
		xs = append(xs, float32(i)/100) // [-20, 20]
	}
	exec := MustNewExec(getBackend(t), func(x *Node) []*Node {
		return []*Node{RationalTanh(x), RationalSigmoid(x), SiLU(x), GeluTanh(x)}
	})
	outs := exec.MustCall(xs)
	names := []string{"tanh", "sigmoid", "silu", "gelu"}
	refs := []func(float64) float64{
		math.Tanh,
		func(x float64) float64 { return 1 / (1 + math.Exp(-x)) },
		func(x float64) float64 { return x / (1 + math.Exp(-x)) },
		func(x float64) float64 { return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x))) },
	}
	for k, out := range outs {
		got, _ := tensors.CopyFlatData[float32](out)
		worst := 0.0
		for i, x := range xs {
			want := refs[k](float64(x))
			err := math.Abs(float64(got[i])-want) / math.Max(1, math.Abs(want))
			worst = math.Max(worst, err)
		}
		if worst > 5e-6 { // float32 rounding, and tanh reaching exactly 1 at its clamp (7.9).
			t.Errorf("%s: max error %.3g against math, want <= 5e-6", names[k], worst)
		}
	}
}
