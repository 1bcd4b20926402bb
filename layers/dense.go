package layers

import (
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions" //nolint:revive // GoMLX style.
)

// Dense is Flax's nn.Dense: x [..., inFeatures] times a "weights" variable [inFeatures, outFeatures]
// (LeCun normal), plus (if useBias) a "biases" variable [outFeatures] (zeros), created in the sub-scope
// "dense". It returns [..., outFeatures].
func Dense(scope *model.Scope, x *Node, outFeatures int, useBias bool) *Node {
	return DenseWithInitializer(scope, x, outFeatures, useBias, nil)
}

// DenseWithInitializer is Dense with a given kernel initializer (nil means LecunNormal); the tutorial's
// attention uses XavierUniform.
func DenseWithInitializer(scope *model.Scope, x *Node, outFeatures int, useBias bool,
	kernelInitializer model.VariableInitializer) *Node {
	scope = scope.In("dense")
	if x.Rank() < 1 || outFeatures <= 0 {
		Panicf("layers.Dense: x must have rank >= 1 and outFeatures > 0, got x %s, outFeatures %d", x.Shape(), outFeatures)
	}
	if kernelInitializer == nil {
		kernelInitializer = LecunNormal(scope)
	}
	g := x.Graph()
	dtype := x.DType()
	dims := x.Shape().Dimensions
	inFeatures := dims[len(dims)-1]
	weights := scope.WithInitializer(kernelInitializer).VariableWithShape("weights",
		shapes.Make(dtype, inFeatures, outFeatures)).NodeValue(g)
	rows := x.Shape().Size() / inFeatures
	y := product(Reshape(x, rows, inFeatures), weights)
	if useBias {
		bias := scope.WithInitializer(ZerosInitializer).VariableWithShape("biases",
			shapes.Make(dtype, outFeatures)).NodeValue(g)
		y = Add(y, ExpandLeftToRank(bias, 2))
	}
	outDims := append(append([]int(nil), dims[:len(dims)-1]...), outFeatures)
	return Reshape(y, outDims...)
}
