// Package layers holds the building blocks of the diffusion U-Net of the JAX/Flax DDPM/DDIM MNIST tutorial,
// written for GoMLX: convolutions (im2col + one matrix multiplication, correct and fast on the pure Go
// backend), transposed convolutions, group normalization, dense projections with Flax's initializers,
// the sinusoidal time embedding, multi-head self-attention, the tutorial's Block and ResnetBlock, and the
// U-Net itself, configured by UNetConfig.
//
// All images use the NHWC layout ([batch, height, width, channels]). Variables are created in the dtype
// of the layer's input, so a model built on Float64 inputs has Float64 variables (useful for gradient
// checks). Initialization follows Flax's defaults: LeCun normal (truncated normal with variance 1/fan_in)
// for kernels, zeros for biases, ones for normalization scales, and Xavier uniform for the attention
// projections, as the tutorial does. GoMLX's default He initializer is not used: it makes the initial
// U-Net output (and so the loss) explode.
//
// Like GoMLX's ml/layers, each layer creates its variables in a sub-scope of the given scope (e.g. "conv",
// "group_norm", "dense"); call it with a distinct scope per layer instance.
package layers

import (
	"math"

	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
	"github.com/gomlx/gomlx/ml/model"
)

// truncatedNormalStdDevCorrection is the standard deviation of a standard normal truncated to [-2, 2]; Flax
// (jax.nn.initializers.variance_scaling with "truncated_normal") divides by it so that the variance is exact.
const truncatedNormalStdDevCorrection = 0.87962566103423978

// FanInFanOut returns the fan-in and fan-out of a kernel shape the way Flax computes them: the last axis is
// the output, the one before it is the input, and all leading axes form the receptive field.
// Shapes of rank < 2 (biases) return (1, 1); initializers don't use fans for them.
func FanInFanOut(shape shapes.Shape) (fanIn, fanOut int) {
	rank := shape.Rank()
	if rank < 2 {
		return 1, 1
	}
	receptive := 1
	for _, d := range shape.Dimensions[:rank-2] {
		receptive *= d
	}
	return shape.Dimensions[rank-2] * receptive, shape.Dimensions[rank-1] * receptive
}

// ParamKernelInitScale is the scope hyperparameter (float64, default 1: Flax's initialization) that
// multiplies the initial values drawn by LecunNormal and XavierUniform, read from the initializer's scope
// or its parents. UNet sets it from UNetConfig.InitScale.
const ParamKernelInitScale = "kernel_init_scale"

// kernelInitScale returns the scope's ParamKernelInitScale, or 1.
func kernelInitScale(scope *model.Scope) float64 {
	return model.GetParamOr(scope, ParamKernelInitScale, 1.0)
}

// LecunNormal returns Flax's default kernel initializer (jax.nn.initializers.lecun_normal): a normal
// distribution truncated to two standard deviations, scaled to variance 1/fan_in (times the square of the
// scope's ParamKernelInitScale). Shapes of rank <= 1 are initialized with zeros. It draws from the scope's
// store random state.
func LecunNormal(scope *model.Scope) model.VariableInitializer {
	return func(g *Graph, shape shapes.Shape) *Node {
		if shape.Rank() <= 1 || !shape.DType.IsFloat() {
			return Zeros(g, shape)
		}
		fanIn, _ := FanInFanOut(shape)
		stddev := kernelInitScale(scope) * math.Sqrt(1.0/float64(max(fanIn, 1))) / truncatedNormalStdDevCorrection
		return MulScalar(truncatedStandardNormal(scope, g, shape), stddev)
	}
}

// truncatedStandardNormal samples a standard normal truncated to [-2, 2]: values outside are redrawn a few
// times (each round leaves ~4.6% of the previous outliers), and the rare survivors are clipped.
func truncatedStandardNormal(scope *model.Scope, g *Graph, shape shapes.Shape) *Node {
	values := scope.RandomNormal(g, shape)
	for range 4 {
		outside := GreaterThan(Abs(values), Scalar(g, shape.DType, 2.0))
		values = Where(outside, scope.RandomNormal(g, shape), values)
	}
	return ClipScalar(values, -2.0, 2.0)
}

// XavierUniform returns Flax's jax.nn.initializers.xavier_uniform: uniform in [-limit, limit] with
// limit = sqrt(6 / (fan_in + fan_out)) (times the scope's ParamKernelInitScale). Shapes of rank <= 1 are
// initialized with zeros. It draws from the scope's store random state.
func XavierUniform(scope *model.Scope) model.VariableInitializer {
	return func(g *Graph, shape shapes.Shape) *Node {
		if shape.Rank() <= 1 || !shape.DType.IsFloat() {
			return Zeros(g, shape)
		}
		fanIn, fanOut := FanInFanOut(shape)
		limit := kernelInitScale(scope) * math.Sqrt(6.0/float64(max(fanIn+fanOut, 1)))
		values := scope.RandomUniform(g, shape)
		return AddScalar(MulScalar(values, 2*limit), -limit)
	}
}

// ZerosInitializer initializes variables with zeros (Flax's default for biases).
func ZerosInitializer(g *Graph, shape shapes.Shape) *Node { return Zeros(g, shape) }

// OnesInitializer initializes variables with ones (Flax's default for normalization scales).
func OnesInitializer(g *Graph, shape shapes.Shape) *Node { return Ones(g, shape) }

// NumTrainableParameters returns the total number of scalars in the trainable variables of store, leaving out
// internal state such as the random number generator's (which store.NumParameters counts once it exists).
func NumTrainableParameters(store *model.Store) int {
	total := 0
	for v := range store.IterVariables() {
		if v.Trainable {
			total += v.Shape().Size()
		}
	}
	return total
}
