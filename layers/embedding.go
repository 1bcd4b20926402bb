package layers

import (
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
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

// ClassEmbedding returns a learned embedding [batch, dim] of the class labels [batch] (integers in
// [0, classes]; the label classes means "no label", the unconditional case of classifier-free
// guidance). The table, "embeddings" [classes+1, dim] initialised from N(0, 1) as Flax's nn.Embed and
// PyTorch's nn.Embedding, is read with a one-hot product, whose gradient every engine has.
// Labels outside [0, classes] select no row and embed to zeros.
func ClassEmbedding(scope *model.Scope, labels *Node, classes, dim int) *Node {
	if labels.Rank() != 1 || !labels.DType().IsInt() {
		Panicf("layers.ClassEmbedding: labels must be integers shaped [batch], got %s", labels.Shape())
	}
	if classes < 1 || dim < 1 {
		Panicf("layers.ClassEmbedding: classes and dim must be >= 1, got %d and %d", classes, dim)
	}
	g := labels.Graph()
	table := scope.WithInitializer(func(g *Graph, shape shapes.Shape) *Node { return scope.RandomNormal(g, shape) }).
		VariableWithShape("embeddings", shapes.Make(dtypes.Float32, classes+1, dim)).NodeValue(g)
	return product(OneHot(labels, classes+1, dtypes.Float32), table)
}

// NoLabels returns [batch] labels that all say "no label" (the value classes) for ClassEmbedding.
func NoLabels(g *Graph, batch, classes int) *Node {
	return BroadcastToDims(Const(g, int32(classes)), batch)
}
