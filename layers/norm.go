package layers

import (
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions" //nolint:revive // GoMLX style.
)

// GroupNormEpsilon is the epsilon GroupNorm adds to the variance: Flax's nn.GroupNorm default.
const GroupNormEpsilon = 1e-6

// GroupNorm normalizes x [batch, ..., channels] (e.g. NHWC) over groups of channels, the equivalent of
// Flax's nn.GroupNorm(num_groups=groups): the channels are split into groups of channels/groups
// consecutive channels, and each (example, group) is normalized to zero mean and unit variance over its
// spatial positions and channels, with epsilon GroupNormEpsilon. Then a per-channel "scale" (initialized
// to ones) and "bias" (zeros) are applied. Variables are created in the sub-scope "group_norm".
//
// It panics if channels is not divisible by groups.
func GroupNorm(scope *model.Scope, x *Node, groups int) *Node {
	scope = scope.In("group_norm")
	if x.Rank() < 2 {
		Panicf("layers.GroupNorm: x must be shaped [batch, ..., channels], got %s", x.Shape())
	}
	channels := x.Shape().Dim(-1)
	if groups <= 0 || channels%groups != 0 {
		Panicf("layers.GroupNorm: channels (%d) must be divisible by groups (%d), x shaped %s",
			channels, groups, x.Shape())
	}
	dtype := x.DType()
	g := x.Graph()
	normalized := GroupNormalize(x, groups, GroupNormEpsilon)
	scale := scope.WithInitializer(OnesInitializer).VariableWithShape("scale", shapes.Make(dtype, channels)).NodeValue(g)
	bias := scope.WithInitializer(ZerosInitializer).VariableWithShape("bias", shapes.Make(dtype, channels)).NodeValue(g)
	return Add(Mul(normalized, ExpandLeftToRank(scale, x.Rank())), ExpandLeftToRank(bias, x.Rank()))
}

// GroupNormalize is GroupNorm without the learned scale and bias: x [batch, ..., channels] normalized per
// (example, group of channels/groups consecutive channels) to zero mean and unit variance (variance
// plus epsilon). It divides by Sqrt (graph.Rsqrt has no gradient).
func GroupNormalize(x *Node, groups int, epsilon float64) *Node {
	dims := x.Shape().Dimensions
	batch, channels := dims[0], dims[len(dims)-1]
	if groups <= 0 || channels%groups != 0 {
		Panicf("layers.GroupNormalize: channels (%d) must be divisible by groups (%d), x shaped %s",
			channels, groups, x.Shape())
	}
	positions := x.Shape().Size() / (batch * channels)
	grouped := Reshape(x, batch, positions, groups, channels/groups)
	mean := ReduceAndKeep(grouped, ReduceMean, 1, 3)
	centered := Sub(grouped, mean)
	variance := ReduceAndKeep(Mul(centered, centered), ReduceMean, 1, 3)
	return Reshape(Div(centered, Sqrt(AddScalar(variance, epsilon))), dims...)
}
