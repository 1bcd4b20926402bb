package layers

import (
	"math"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions" //nolint:revive // GoMLX style.
)

// Attention is the tutorial's Attention(dim, num_heads): multi-head dot-product self-attention over the
// height*width positions of x [batch, height, width, channels]. A "qkv" Dense(3*channels) without bias
// (Xavier uniform) gives queries, keys and values split in heads of channels/heads features; the
// attention weights are softmax(q·kᵀ / sqrt(channels/heads)); the heads' outputs are concatenated and
// projected by an "out" Dense(channels) with bias (Xavier uniform). It returns [batch, height, width,
// channels]. It panics if channels is not divisible by heads.
func Attention(scope *model.Scope, x *Node, heads int) *Node {
	if x.Rank() != 4 {
		Panicf("layers.Attention: x must be shaped [batch, height, width, channels], got %s", x.Shape())
	}
	dims := x.Shape().Dimensions
	batch, height, width, channels := dims[0], dims[1], dims[2], dims[3]
	if heads <= 0 || channels%heads != 0 {
		Panicf("layers.Attention: channels (%d) must be divisible by heads (%d)", channels, heads)
	}
	n := height * width
	headDim := channels / heads
	tokens := Reshape(x, batch, n, channels)
	qkvScope := scope.In("qkv")
	qkv := DenseWithInitializer(qkvScope, tokens, 3*channels, false, XavierUniform(qkvScope))
	qkv = Reshape(qkv, batch, n, 3, heads, headDim)
	q := Reshape(Slice(qkv, AxisRange(), AxisRange(), AxisElem(0)), batch, n, heads, headDim)
	k := Reshape(Slice(qkv, AxisRange(), AxisRange(), AxisElem(1)), batch, n, heads, headDim)
	v := Reshape(Slice(qkv, AxisRange(), AxisRange(), AxisElem(2)), batch, n, heads, headDim)
	// logits[b, h, i, j] = sum_d q[b, i, h, d] * k[b, j, h, d] / sqrt(headDim).
	logits := DotGeneral(q, []int{3}, []int{0, 2}, k, []int{3}, []int{0, 2})
	logits = MulScalar(logits, 1/math.Sqrt(float64(headDim)))
	weights := SoftmaxLastAxis(logits)
	// out[b, h, i, d] = sum_j weights[b, h, i, j] * v[b, j, h, d].
	out := DotGeneral(weights, []int{3}, []int{0, 1}, v, []int{1}, []int{0, 2})
	out = Reshape(TransposeAllAxes(out, 0, 2, 1, 3), batch, n, channels) // [b, i, h, d] -> heads concatenated.
	outScope := scope.In("out")
	out = DenseWithInitializer(outScope, out, channels, true, XavierUniform(outScope))
	return Reshape(out, batch, height, width, channels)
}
