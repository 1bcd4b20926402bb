package layers

import (
	"math"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
)

// TestActivations compares SiLU and GeluTanh, and SiLU's gradient, with their closed forms over a
// dense grid, in float32 (as the models run) and float64 (as the gradient checks run).
func TestActivations(t *testing.T) {
	xs := make([]float64, 0, 4001)
	for i := -2000; i <= 2000; i++ {
		xs = append(xs, float64(i)/100) // [-20, 20]
	}
	sigmoid := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	refs := []struct {
		name string
		f    func(float64) float64
	}{
		{"silu", func(x float64) float64 { return x * sigmoid(x) }},
		{"gelu", func(x float64) float64 { return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x))) }},
		{"silu'", func(x float64) float64 { s := sigmoid(x); return s * (1 + x*(1-s)) }},
	}
	for _, tc := range []struct {
		dtype dtypes.DType
		tol   float64
	}{{dtypes.Float32, 5e-6}, {dtypes.Float64, 1e-12}} {
		exec := MustNewExec(getBackend(t), func(x *Node) []*Node {
			x = ConvertDType(x, tc.dtype)
			silu := SiLU(x)
			grad := Gradient(ReduceAllSum(silu), x)[0]
			return []*Node{ConvertDType(silu, dtypes.Float64), ConvertDType(GeluTanh(x), dtypes.Float64), ConvertDType(grad, dtypes.Float64)}
		})
		outs := exec.MustCall(xs)
		for k, out := range outs {
			got := tensors.MustCopyFlatData[float64](out)
			worst := 0.0
			for i, x := range xs {
				want := refs[k].f(x)
				worst = max(worst, math.Abs(got[i]-want)/max(1, math.Abs(want)))
			}
			if worst > tc.tol {
				t.Errorf("%s %s: max error %.3g against the closed form, want <= %.0g", tc.dtype, refs[k].name, worst, tc.tol)
			}
		}
	}
}
