package layers

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions" //nolint:revive // GoMLX style.

	"github.com/godiffusion/godiffusion/backend"
)

// This file is the one place where the layers choose, per engine, how to write the operations
// whose fastest form depends on it. The layers ask for "a convolution", "a product", "SiLU" or
// "attention weights"; the formulation of the graph's engine answers:
//
//   - FormulationNative, for engines with fast kernels of their own (XLA, ONNX Runtime): GoMLX's
//     Convolve, Dot and Softmax, differentiated automatically.
//   - FormulationGo, for GoMLX's pure Go backend, whose convolution is a scalar loop: im2col and
//     flat-layout products (conv.go, conv_flat.go), products arranged for its matmul kernels with
//     hand-written gradients (matmul.go), attention in chunks with a hand-written gradient
//     (attention.go).
//
// BenchmarkFormulations times each piece in both forms on one engine (docs/performance.md).
//
// Both compute the same function (TestFormulationsAgree checks values and gradients on every
// engine present). Strided convolutions and the 4x4 transposed convolution use the same
// space-to-depth and sub-pixel forms in both: ONNX Runtime cannot differentiate strided or dilated
// convolutions.

// Formulation selects how the layers write engine-dependent operations (see SetFormulation).
type Formulation string

const (
	// FormulationNative uses GoMLX's own operations (Convolve, Dot, Softmax).
	FormulationNative Formulation = "native"
	// FormulationGo uses the forms written for GoMLX's pure Go backend.
	FormulationGo Formulation = "go"
)

// formulationParam is the graph parameter that overrides the formulation of one graph.
const formulationParam = "/layers_formulation"

// SetFormulation makes the layers built in graph g use f instead of the formulation of g's engine
// (FormulationGo on the pure Go backend, FormulationNative elsewhere). Call it before building the
// layers, e.g. to compare formulations on one engine.
func SetFormulation(g *Graph, f Formulation) {
	if f != FormulationNative && f != FormulationGo {
		Panicf("layers.SetFormulation: unknown formulation %q", f)
	}
	model.SetGraphParam(g, formulationParam, f)
}

// FormulationOf returns the formulation the layers use in graph g.
func FormulationOf(g *Graph) Formulation {
	if f, ok := model.GetGraphParam(g, formulationParam); ok {
		return f.(Formulation)
	}
	if b := g.Backend(); b != nil && backend.Kind(b) != backend.Go {
		return FormulationNative
	}
	return FormulationGo
}

// ParseFormulation checks a formulation name ("" means the engine's own).
func ParseFormulation(name string) (Formulation, error) {
	switch f := Formulation(name); f {
	case "", FormulationNative, FormulationGo:
		return f, nil
	}
	return "", fmt.Errorf("formulation %q: want %q or %q", name, FormulationNative, FormulationGo)
}

func native(x *Node) bool { return FormulationOf(x.Graph()) == FormulationNative }

// product returns a·w for a [P, K] and w [K, M].
func product(a, w *Node) *Node {
	if native(a) {
		return Dot(a, w).Product()
	}
	return matMul(a, w)
}

// productNT returns a·bᵀ contracting the last axes of a [(g,) m, k] and b [(g,) n, k].
func productNT(a, b *Node) *Node {
	if native(a) {
		return dotLastAxes(a, b)
	}
	return dotNT(a, b)
}

// stride1Conv is a stride-1 convolution of x [batch, height, width, cin] with kernel [kh, kw, cin,
// cout] and zero paddings smaller than the kernel, plus bias [cout] if not nil.
func stride1Conv(x, kernel, bias *Node, padLow, padHigh [2]int) *Node {
	if !native(x) || !nativeConvPrecise(x) {
		kdims := kernel.Shape().Dimensions
		if conv2DFlatApplies(x.Shape().Dim(1), x.Shape().Dim(2), kdims[0], kdims[1], 1, padLow, padHigh) {
			return conv2DFlat(x, kernel, bias)
		}
		return conv2DStride1(x, kernel, bias, padLow, padHigh)
	}
	kdims := kernel.Shape().Dimensions
	if kdims[0]%2 == 1 && kdims[1]%2 == 1 {
		return addBias(nativeConv(x, kernel, padLow, padHigh), bias)
	}
	// GoMLX's automatic input gradient of Convolve pads the adjoint wrongly for even kernel sizes
	// (TestFormulationsAgree catches it): dx is written here as the convolution of the adjoint,
	// padded by kernel-1-padding, with the kernel flipped in space and its channel axes swapped.
	var adjoint *Node
	xIn := IdentityWithCustomGradient(x, func(_, _ *Node) *Node {
		flipped := TransposeAllAxes(Reverse(kernel, 0, 1), 0, 1, 3, 2)
		return nativeConv(adjoint, flipped,
			[2]int{kdims[0] - 1 - padLow[0], kdims[1] - 1 - padLow[1]}, [2]int{kdims[0] - 1 - padHigh[0], kdims[1] - 1 - padHigh[1]})
	})
	out := IdentityWithCustomGradient(nativeConv(xIn, kernel, padLow, padHigh), func(_, v *Node) *Node {
		adjoint = v
		return v
	})
	return addBias(out, bias)
}

// nativeConv is GoMLX's stride-1 Convolve of x [batch, height, width, cin] with kernel [kh, kw,
// cin, cout] and zero paddings.
func nativeConv(x, kernel *Node, padLow, padHigh [2]int) *Node {
	return Convolve(x, kernel).PaddingPerDim([][2]int{{padLow[0], padHigh[0]}, {padLow[1], padHigh[1]}}).Done()
}

// addBias adds bias [channels] to x [batch, height, width, channels], if not nil.
func addBias(x, bias *Node) *Node {
	if bias == nil {
		return x
	}
	return Add(x, ExpandLeftToRank(bias, 4))
}

// nativeConvPrecise tells whether the engine convolves x natively in x's own precision: ONNX
// Runtime has no float64 convolution (GoMLX computes it in float32), so float64 graphs, such as
// the finite-difference checks, keep the im2col form there.
func nativeConvPrecise(x *Node) bool {
	b := x.Graph().Backend()
	return x.DType() != dtypes.Float64 || b == nil || backend.Kind(b) != backend.ONNX
}

// attentionOutput returns softmax(q·kᵀ·scale)·v for q, k, v [g, n, d].
func attentionOutput(q, k, v *Node, scale float64) *Node {
	if !native(q) {
		return attentionCore(q, k, v, scale)
	}
	w := Softmax(dotLastAxes(MulScalar(q, scale), k), -1)
	return DotGeneral(w, []int{2}, []int{0}, v, []int{1}, []int{0})
}
