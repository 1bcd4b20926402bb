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
	if timeEmbedding != nil {
		if timeEmbedding.Rank() != 2 || timeEmbedding.Shape().Dim(0) != x.Shape().Dim(0) {
			Panicf("layers.ResnetBlock: timeEmbedding must be [batch=%d, features], got %s",
				x.Shape().Dim(0), timeEmbedding.Shape())
		}
		temb := Dense(scope.In("time"), SiLU(timeEmbedding), dim, true)
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
