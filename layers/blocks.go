package layers

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions" //nolint:revive // GoMLX style.
)

// Block is the tutorial's Block(dim, groups): a 3x3 "SAME" convolution to dim channels (with bias),
// GroupNorm(groups) and SiLU. x is [batch, height, width, channels]; it returns [batch, height, width, dim].
func Block(scope *model.Scope, x *Node, dim, groups int) *Node {
	x = Conv(scope, x).Channels(dim).KernelSize(3).Done()
	x = GroupNorm(scope, x, groups)
	return SiLU(x)
}

// ResnetBlock is the tutorial's ResnetBlock(dim, groups): Block(dim) of x; plus, if timeEmbedding
// [batch, timeFeatures] is not nil, Dense(dim)(silu(timeEmbedding)) broadcast over height and width;
// another Block(dim); plus a 1x1 convolution of x to dim channels (always applied, as in the tutorial).
// Sub-scopes: "block_0", "time", "block_1", "residual".
func ResnetBlock(scope *model.Scope, x, timeEmbedding *Node, dim, groups int) *Node {
	h := Block(scope.In("block_0"), x, dim, groups)
	h = addTimeEmbedding(scope.In("time"), h, timeEmbedding, "ResnetBlock")
	h = Block(scope.In("block_1"), h, dim, groups)
	residual := Conv(scope.In("residual"), x).Channels(dim).KernelSize(1).Done()
	return Add(h, residual)
}

// addTimeEmbedding returns h [batch, height, width, dim] plus Dense(dim)(silu(timeEmbedding)) broadcast over
// height and width, with the Dense in scope; h itself if timeEmbedding is nil. It panics, naming block, if
// timeEmbedding is not [batch, features].
func addTimeEmbedding(scope *model.Scope, h, timeEmbedding *Node, block string) *Node {
	if timeEmbedding == nil {
		return h
	}
	if timeEmbedding.Rank() != 2 || timeEmbedding.Shape().Dim(0) != h.Shape().Dim(0) {
		Panicf("layers.%s: timeEmbedding must be [batch=%d, features], got %s",
			block, h.Shape().Dim(0), timeEmbedding.Shape())
	}
	temb := Dense(scope, SiLU(timeEmbedding), h.Shape().Dim(-1), true)
	return Add(h, InsertAxes(temb, 1, 1)) // [batch, 1, 1, dim]
}

// AttentionBlock is the tutorial's residual attention step: x + GroupNorm(groups)(Attention(heads)(x)).
// Sub-scopes: "attention" and "norm".
func AttentionBlock(scope *model.Scope, x *Node, heads, groups int) *Node {
	att := Attention(scope.In("attention"), x, heads)
	return Add(GroupNorm(scope.In("norm"), att, groups), x)
}

// PreNormResnetBlock is the pre-activation ResNet block of DDPM and ADM (Dhariwal & Nichol 2021), used by
// UNet when UNetConfig.PreNorm is set: h = Conv3x3(SiLU(GroupNorm(x))) ("norm_0", "conv_0"), plus
// Dense(dim)(silu(timeEmbedding)) ("time") if timeEmbedding is not nil, then Conv3x3(SiLU(GroupNorm(h)))
// ("norm_1", "conv_1"); it returns skip(x) + h, where skip is the identity if x already has dim channels
// and a 1x1 convolution ("skip") otherwise.
//
// The last convolution starts at zero, so the block starts as its skip connection: the residual stream
// carries the input through a deep U-Net from the first step, which trains much faster than ResnetBlock's
// normalized outputs. The input's GroupNorm uses gcd(groups, channels) groups, so that any input width
// (the stem's, a concatenation) is accepted.
func PreNormResnetBlock(scope *model.Scope, x, timeEmbedding *Node, dim, groups int) *Node {
	channels := x.Shape().Dim(-1)
	h := normSiLU(scope.In("norm_0"), x, groups)
	h = Conv(scope.In("conv_0"), h).Channels(dim).KernelSize(3).Done()
	h = addTimeEmbedding(scope.In("time"), h, timeEmbedding, "PreNormResnetBlock")
	h = normSiLU(scope.In("norm_1"), h, groups)
	h = Conv(scope.In("conv_1"), h).Channels(dim).KernelSize(3).KernelInitializer(ZerosInitializer).Done()
	skip := x
	if channels != dim {
		skip = Conv(scope.In("skip"), x).Channels(dim).KernelSize(1).Done()
	}
	return Add(skip, h)
}

// PreNormAttentionBlock is the pre-activation residual attention step used by UNet when UNetConfig.PreNorm
// is set: x + Attention(heads)(GroupNorm(groups)(x)), with the attention's "out" projection starting at
// zero, so that the block starts as the identity. Sub-scopes: "norm" and "attention".
func PreNormAttentionBlock(scope *model.Scope, x *Node, heads, groups int) *Node {
	h := GroupNorm(scope.In("norm"), x, gcd(groups, x.Shape().Dim(-1)))
	return Add(x, attention(scope.In("attention"), h, heads, ZerosInitializer))
}

// normSiLU is SiLU(GroupNorm(x)) with gcd(groups, channels) groups, the pre-activation of PreNormResnetBlock
// and of the PreNorm U-Net's output.
func normSiLU(scope *model.Scope, x *Node, groups int) *Node {
	return SiLU(GroupNorm(scope, x, gcd(groups, x.Shape().Dim(-1))))
}

// gcd returns the greatest common divisor of a and b (> 0).
func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
