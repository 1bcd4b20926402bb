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
//
// The weights are computed in chunks of (example, head) pairs with a hand-written gradient (see
// attentionCore), so that memory stays bounded at high resolutions: the tutorial's 32x32 attention has
// batch·heads·1024² weights, 2 GB per layer at batch 64.
func Attention(scope *model.Scope, x *Node, heads int) *Node {
	return attention(scope, x, heads, nil)
}

// attention is Attention with the "out" projection's kernel initializer (nil: XavierUniform).
func attention(scope *model.Scope, x *Node, heads int, outInitializer model.VariableInitializer) *Node {
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
	// [b, i, (3, h, d)] -> [3, b, h, i, d]: one transpose, then q, k and v are contiguous slices.
	qkv = TransposeAllAxes(Reshape(qkv, batch, n, 3, heads, headDim), 2, 0, 3, 1, 4)
	part := func(i int) *Node {
		return Reshape(Slice(qkv, AxisElem(i), AxisRange(), AxisRange(), AxisRange(), AxisRange()), batch*heads, n, headDim)
	}
	out := attentionOutput(part(0), part(1), part(2), 1/math.Sqrt(float64(headDim))) // [b*h, i, d]
	// [b, h, i, d] -> [b, i, h, d]: the heads' outputs concatenated per position.
	out = Reshape(TransposeAllAxes(Reshape(out, batch, heads, n, headDim), 0, 2, 1, 3), batch, n, channels)
	outScope := scope.In("out")
	if outInitializer == nil {
		outInitializer = XavierUniform(outScope)
	}
	out = DenseWithInitializer(outScope, out, channels, true, outInitializer)
	return Reshape(out, batch, height, width, channels)
}

// AttentionChunkBytes bounds the size of the attention weights computed at once by Attention: the
// (example, head) pairs are processed in chunks whose [chunk, n, n] weights take at most this many bytes
// (at least one pair per chunk).
var AttentionChunkBytes = 64 << 20

// attentionCore returns softmax(q·kᵀ·scale)·v for q, k, v [g, n, d], g independent (example, head) pairs,
// computed in chunks of the g axis of at most AttentionChunkBytes of weights each.
//
// The gradient is written by hand. With a single chunk the forward weights w are kept for it; with several
// they are recomputed chunk by chunk, so that at most one chunk of weights is alive at a time, in the forward
// pass and in the backward pass alike. For the output adjoint o and logits l = q·kᵀ·scale:
//
//	dv = wᵀ·o,  dw = o·vᵀ,  dl = w ⊙ (dw - Σ_j dw ⊙ w),  dq = scale·dl·k,  dk = scale·dlᵀ·q.
//
// Every product is arranged so that GoMLX's Go backend multiplies it in a native layout: the products that
// contract the position axis i (dv, dk) are computed transposed, with only the small [n, d] operand
// transposed.
func attentionCore(q, k, v *Node, scale float64) *Node {
	dims := q.Shape().Dimensions
	g, n := dims[0], dims[1]
	chunk := max(1, min(g, AttentionChunkBytes/(n*n*q.DType().Size())))
	var starts []int
	for s := 0; s < g; s += chunk {
		starts = append(starts, s)
	}
	slice := func(x *Node, i int) *Node {
		if len(starts) == 1 {
			return x
		}
		return Slice(x, AxisRange(starts[i], min(starts[i]+chunk, g)))
	}
	join := func(parts []*Node) *Node {
		if len(parts) == 1 {
			return parts[0]
		}
		return Concatenate(parts, 0)
	}
	// swap transposes the last two axes: [c, a, b] -> [c, b, a].
	swap := func(x *Node) *Node { return TransposeAllAxes(x, 0, 2, 1) }
	weights := func(qs, k *Node) *Node { // qs = q·scale.
		return Softmax(dotNT(qs, k), -1)
	}

	var adjoint, qIn, kIn, vIn, qs *Node
	var kept *Node // The forward weights, with a single chunk.
	var dq, dk, dv, gradsAdjoint *Node
	grads := func() {
		if gradsAdjoint == adjoint {
			return
		}
		gradsAdjoint = adjoint
		var dqs, dks, dvs []*Node
		for i := range starts {
			qc, kc, vc, oc := slice(qs, i), slice(kIn, i), slice(vIn, i), slice(adjoint, i)
			w := kept
			if w == nil {
				w = weights(qc, kc)
			}
			dvs = append(dvs, swap(DotGeneral(swap(oc), []int{2}, []int{0}, w, []int{1}, []int{0}))) // (oᵀ·w)ᵀ
			dw := dotNT(oc, vc)                                                                      // o·vᵀ
			dl := Mul(w, Sub(dw, ReduceAndKeep(Mul(dw, w), ReduceSum, -1)))
			dqs = append(dqs, MulScalar(DotGeneral(dl, []int{2}, []int{0}, kc, []int{1}, []int{0}), scale))
			dks = append(dks, swap(DotGeneral(swap(qc), []int{2}, []int{0}, dl, []int{1}, []int{0}))) // (qsᵀ·dl)ᵀ
		}
		dq, dk, dv = join(dqs), join(dks), join(dvs)
	}
	qIn = IdentityWithCustomGradient(q, func(_, _ *Node) *Node { grads(); return dq })
	kIn = IdentityWithCustomGradient(k, func(_, _ *Node) *Node { grads(); return dk })
	vIn = IdentityWithCustomGradient(v, func(_, _ *Node) *Node { grads(); return dv })
	qs = MulScalar(qIn, scale)
	outs := make([]*Node, len(starts))
	for i := range starts {
		// w is not stopped: the gradient must reach qIn and kIn, whose custom gradients replace what the
		// automatic differentiation of the softmax would give (those nodes are left unused).
		w := weights(slice(qs, i), slice(kIn, i))
		if len(starts) == 1 {
			kept = w
		}
		outs[i] = DotGeneral(w, []int{2}, []int{0}, slice(vIn, i), []int{1}, []int{0})
	}
	return IdentityWithCustomGradient(join(outs), func(_, o *Node) *Node {
		adjoint = o
		return o
	})
}
