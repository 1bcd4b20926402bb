package layers

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// TestSiLUWithGradient compares the hand-written Float32 gradient of siluWithGradient with the automatic
// gradient of x·RationalSigmoid(x), and their values.
func TestSiLUWithGradient(t *testing.T) {
	b := getBackend(t)
	rng := rand.New(rand.NewPCG(21, 22))
	values := make([]float32, 4096)
	for i := range values {
		values[i] = float32(rng.NormFloat64() * 4)
	}
	values[0], values[1], values[2] = 0, 20, -20
	x := tensors.FromFlatDataAndDimensions(values, 64, 64)
	e := graph.MustNewExec(b, func(x *graph.Node) []*graph.Node {
		w := graph.Sin(graph.IotaFull(x.Graph(), x.Shape())) // Fixed adjoint weights.
		fast := siluWithGradient(x)
		ref := graph.Mul(x, RationalSigmoid(x))
		gFast := graph.Gradient(graph.ReduceAllSum(graph.Mul(fast, w)), x)[0]
		gRef := graph.Gradient(graph.ReduceAllSum(graph.Mul(ref, w)), x)[0]
		return []*graph.Node{fast, ref, gFast, gRef}
	})
	outs := e.MustCall(x)
	if outs[0].DType() != dtypes.Float32 {
		t.Fatalf("dtype %s", outs[0].DType())
	}
	// Compare values with each other, and both gradients with the exact derivative σ(x)·(1 + x·(1-σ(x))):
	// the hand-written one must be as accurate as the automatic one (both carry float32 rounding).
	fast, ref := outs[0].Value().([][]float32), outs[1].Value().([][]float32)
	gFast, gRef := outs[2].Value().([][]float32), outs[3].Value().([][]float32)
	var worstValue, worstFast, worstRef float64
	for i := range fast {
		for j := range fast[i] {
			v := float64(values[i*64+j])
			sig := 1 / (1 + math.Exp(-v))
			w := math.Sin(float64(i*64 + j))
			exact := sig * (1 + v*(1-sig)) * w
			worstValue = max(worstValue, math.Abs(float64(fast[i][j]-ref[i][j])))
			worstFast = max(worstFast, math.Abs(float64(gFast[i][j])-exact))
			worstRef = max(worstRef, math.Abs(float64(gRef[i][j])-exact))
		}
	}
	t.Logf("value diff %g; gradient abs error: hand-written %g, automatic %g", worstValue, worstFast, worstRef)
	if worstValue != 0 {
		t.Errorf("siluWithGradient value differs from SiLU by %g", worstValue)
	}
	if worstFast > 1e-5 || worstFast > 2*worstRef+1e-6 {
		t.Errorf("hand-written gradient error %g (automatic gradient: %g)", worstFast, worstRef)
	}
}
