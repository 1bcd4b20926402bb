package layers

import (
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions" //nolint:revive // GoMLX style.
)

// Block is the tutorial's Block(dim, groups): a 3x3 "SAME" convolution to dim channels (with bias),
// GroupNorm(groups) and SiLU. x is [batch, height, width, channels]; it returns [batch, height, width, dim].
func Block(scope *model.Scope, x *Node, dim, groups int) *Node {
	x = Conv(scope, x).Channels(dim).KernelSize(3).Done()
	x = GroupNorm(scope, x, groups)
	return siluWithGradient(x)
}

// siluWithGradient is SiLU(x) = x·σ(x) (σ computed by RationalSigmoid) with a hand-written gradient:
// d/dx = σ(x)·(1 + x - x·σ(x)), 4 elementwise passes over the saved σ and output, instead of
// differentiating the ~25 operations of the rational approximation.
//
// The formula is the derivative of the exact SiLU, and RationalSigmoid is exact to float32 precision only:
// for Float64 (used by the finite-difference gradient checks) the automatic gradient of the approximation
// is kept, so that the checks compare the gradient of the very function computed.
func siluWithGradient(x *Node) *Node {
	if x.DType() != dtypes.Float32 {
		return SiLU(x)
	}
	var adjoint, xIn, s, out *Node
	xIn = IdentityWithCustomGradient(x, func(_, _ *Node) *Node {
		return Mul(adjoint, Mul(s, AddScalar(Sub(xIn, out), 1)))
	})
	s = RationalSigmoid(xIn)
	out = IdentityWithCustomGradient(Mul(xIn, s), func(_, v *Node) *Node {
		adjoint = v
		return v
	})
	return out
}

// ResnetBlock is the tutorial's ResnetBlock(dim, groups): Block(dim) of x; plus, if timeEmbedding
// [batch, timeFeatures] is not nil, Dense(dim)(silu(timeEmbedding)) broadcast over height and width;
// another Block(dim); plus a 1x1 convolution of x to dim channels (always applied, as in the tutorial).
// Sub-scopes: "block_0", "time", "block_1", "residual".
func ResnetBlock(scope *model.Scope, x, timeEmbedding *Node, dim, groups int) *Node {
	h := Block(scope.In("block_0"), x, dim, groups)
	if timeEmbedding != nil {
		if timeEmbedding.Rank() != 2 || timeEmbedding.Shape().Dim(0) != x.Shape().Dim(0) {
			Panicf("layers.ResnetBlock: timeEmbedding must be [batch=%d, features], got %s",
				x.Shape().Dim(0), timeEmbedding.Shape())
		}
		temb := Dense(scope.In("time"), siluWithGradient(timeEmbedding), dim, true)
		h = Add(h, InsertAxes(temb, 1, 1)) // [batch, 1, 1, dim]
	}
	h = Block(scope.In("block_1"), h, dim, groups)
	residual := Conv(scope.In("residual"), x).Channels(dim).KernelSize(1).Done()
	return Add(h, residual)
}

// AttentionBlock is the tutorial's residual attention step: x + GroupNorm(groups)(Attention(heads)(x)).
// Sub-scopes: "attention" and "norm".
func AttentionBlock(scope *model.Scope, x *Node, heads, groups int) *Node {
	att := Attention(scope.In("attention"), x, heads)
	return Add(GroupNorm(scope.In("norm"), att, groups), x)
}
