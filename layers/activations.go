package layers

import (
	"math"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
)

// SiLU is x·sigmoid(x) (Flax's nn.silu, a.k.a. swish).
func SiLU(x *Node) *Node {
	if x.DType() == dtypes.Float64 {
		// ONNX Runtime fuses x·sigmoid(x) into a kernel it has for float32 only.
		return Div(x, OnePlus(Exp(Neg(x))))
	}
	return Mul(x, Sigmoid(x))
}

// GeluTanh is Flax's nn.gelu default (approximate=True): 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³))).
func GeluTanh(x *Node) *Node {
	x3 := Mul(Mul(x, x), x)
	inner := MulScalar(Add(x, MulScalar(x3, 0.044715)), math.Sqrt(2/math.Pi))
	return Mul(MulScalar(x, 0.5), OnePlus(Tanh(inner)))
}
