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
	scale := scope.WithInitializer(OnesInitializer).VariableWithShape("scale", shapes.Make(dtype, channels)).NodeValue(g)
	bias := scope.WithInitializer(ZerosInitializer).VariableWithShape("bias", shapes.Make(dtype, channels)).NodeValue(g)
	return groupNormAffine(x, scale, bias, groups, GroupNormEpsilon)
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

// groupNormAffine is GroupNormalize(x)·scale + bias with a hand-written gradient, in few passes over x:
//
//   - forward: per (example, channel) sums of x and x² (one multiply, two reductions over the positions),
//     from which the per-group mean and variance (E[x²] - E[x]², as Flax's fast variance) and a per
//     (example, channel) factor a = scale·rstd and shift = bias - mean·a; then y = x·a + shift (two passes);
//   - backward, for the output adjoint v: per (example, channel) sums of v and v·x (one multiply, two
//     reductions), then dx = v·a + x·b + c with per (example, channel) b and c (four passes), and the scale
//     and bias gradients from the same sums.
//
// x is [batch, ..., channels]; scale and bias are [channels].
func groupNormAffine(x, scale, bias *Node, groups int, epsilon float64) *Node {
	dims := x.Shape().Dimensions
	batch, channels := dims[0], dims[len(dims)-1]
	positions := x.Shape().Size() / (batch * channels)
	perGroup := channels / groups
	n := float64(positions * perGroup)

	// perChannel broadcasts a per-(example, group) [batch, groups] value to [batch, channels].
	perChannel := func(v *Node) *Node {
		return Reshape(BroadcastToDims(Reshape(v, batch, groups, 1), batch, groups, perGroup), batch, channels)
	}
	// groupSum sums a per-(example, channel) [batch, channels] value over each group: [batch, groups].
	groupSum := func(v *Node) *Node { return ReduceSum(Reshape(v, batch, groups, perGroup), 2) }
	// overPositions reshapes a [batch, channels] value to [batch, 1, channels], to broadcast over positions.
	overPositions := func(v *Node) *Node { return Reshape(v, batch, 1, channels) }

	var adjoint, xIn, scaleIn, out *Node
	var mean, rstd, a *Node // [batch, groups], [batch, groups], [batch, channels].
	// Shared backward sums, built once per adjoint by whichever gradient function runs first.
	var sumV, sumVX, sumsAdjoint *Node // [batch, channels], [batch, channels], the adjoint they are for.
	backwardSums := func() {
		if sumsAdjoint == adjoint {
			return
		}
		sumsAdjoint = adjoint
		v3 := Reshape(adjoint, batch, positions, channels)
		sumV = ReduceSum(v3, 1)
		sumVX = ReduceSum(Mul(v3, Reshape(xIn, batch, positions, channels)), 1)
	}
	// centeredSum[b, c] = Σ_p v·(x - mean) = sumVX - mean·sumV.
	centeredSum := func() *Node { return Sub(sumVX, Mul(perChannel(mean), sumV)) }

	xIn = IdentityWithCustomGradient(x, func(_, _ *Node) *Node {
		backwardSums()
		gammaBC := BroadcastToDims(InsertAxes(scaleIn, 0), batch, channels)
		m1 := DivScalar(groupSum(Mul(gammaBC, sumV)), n)                     // mean of dxhat
		m2 := Mul(DivScalar(groupSum(Mul(gammaBC, centeredSum())), n), rstd) // mean of dxhat·xhat
		rstd2m2 := Mul(Mul(rstd, rstd), m2)                                  // [batch, groups]
		bCoef := perChannel(Neg(rstd2m2))                                    // x coefficient
		cCoef := perChannel(Sub(Mul(rstd2m2, mean), Mul(rstd, m1)))          // constant term
		v3 := Reshape(adjoint, batch, positions, channels)
		x3 := Reshape(xIn, batch, positions, channels)
		dx := Add(Add(Mul(v3, overPositions(a)), Mul(x3, overPositions(bCoef))), overPositions(cCoef))
		return Reshape(dx, dims...)
	})
	scaleIn = IdentityWithCustomGradient(scale, func(_, _ *Node) *Node {
		backwardSums()
		return ReduceSum(Mul(perChannel(rstd), centeredSum()), 0)
	})
	biasIn := IdentityWithCustomGradient(bias, func(_, _ *Node) *Node {
		backwardSums()
		return ReduceSum(sumV, 0)
	})

	x3 := Reshape(xIn, batch, positions, channels)
	mean = DivScalar(groupSum(ReduceSum(x3, 1)), n)
	meanSq := DivScalar(groupSum(ReduceSum(Mul(x3, x3), 1)), n)
	variance := Max(Sub(meanSq, Mul(mean, mean)), ZerosLike(mean))
	rstd = Inverse(Sqrt(AddScalar(variance, epsilon)))
	a = Mul(perChannel(rstd), BroadcastToDims(InsertAxes(scaleIn, 0), batch, channels))
	shift := Sub(BroadcastToDims(InsertAxes(biasIn, 0), batch, channels), Mul(perChannel(mean), a))
	y := Add(Mul(x3, overPositions(a)), overPositions(shift))
	out = IdentityWithCustomGradient(Reshape(y, dims...), func(_, v *Node) *Node {
		adjoint = v
		return v
	})
	return out
}
