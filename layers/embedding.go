package layers

import (
	"math"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions" //nolint:revive // GoMLX style.
)

// SinusoidalEmbedding is the tutorial's SinusoidalEmbedding(dim): for timesteps t [batch] (integer or float)
// it returns [batch, dim] = concat(sin(t*f), cos(t*f)), with half = dim/2 frequencies
// f_i = exp(-i*ln(10000)/(half-1)), i = 0..half-1. Integer t gives Float32; float t keeps its dtype.
func SinusoidalEmbedding(t *Node, dim int) *Node {
	if t.Rank() != 1 {
		Panicf("layers.SinusoidalEmbedding: t must be shaped [batch], got %s", t.Shape())
	}
	half := dim / 2
	if half < 2 {
		Panicf("layers.SinusoidalEmbedding: dim must be >= 4, got %d", dim)
	}
	dtype := t.DType()
	if !dtype.IsFloat() {
		dtype = dtypes.Float32
	}
	freqs := make([]float64, half)
	step := math.Log(10000) / float64(half-1)
	for i := range freqs {
		freqs[i] = math.Exp(-float64(i) * step)
	}
	g := t.Graph()
	f := ConvertDType(Const(g, freqs), dtype)
	args := Mul(InsertAxes(ConvertDType(t, dtype), -1), InsertAxes(f, 0)) // [batch, half]
	return Concatenate([]*Node{Sin(args), Cos(args)}, -1)
}

// TimeEmbedding is the tutorial's TimeEmbedding(dim): SinusoidalEmbedding(t, dim), then Dense(4*dim),
// GELU (tanh approximation, Flax's default), Dense(4*dim). It returns [batch, 4*dim]. Variables are in the
// sub-scopes "dense_0" and "dense_1".
func TimeEmbedding(scope *model.Scope, t *Node, dim int) *Node {
	x := SinusoidalEmbedding(t, dim)
	x = Dense(scope.In("dense_0"), x, 4*dim, true)
	x = GeluTanh(x)
	return Dense(scope.In("dense_1"), x, 4*dim, true)
}
