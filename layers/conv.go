package layers

import (
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions" //nolint:revive // GoMLX style.
)

// This file holds the 2D convolution (im2col + one matrix multiplication) and the transposed convolution.
// Their gradients are partly hand-written (see conv2DStride1 and matMul in matmul.go) so that on the pure
// Go backend every matrix product runs in a native layout, without element-by-element transposes.
//
// GoMLX's graph.Convolve is not used: on the pure Go backend it is a slow scalar loop, its input gradient
// is wrong for 4x4 kernels, and with input dilation it has no gradient. graph.Pad is not used on
// differentiated values either (it has no gradient): zero padding is done with Concatenate.

// PaddingMode selects how a convolution pads its input.
type PaddingMode int

const (
	// PadSame pads like Flax/XLA "SAME": the output spatial size is ceil(input/stride); the total padding
	// max((out-1)*stride + kernel - input, 0) is split with the smaller half at the start.
	// For a 4x4 stride-2 convolution of 32x32 that is 1 on each side (32 -> 16); for 3x3 stride 1, 1 on
	// each side; for 7x7 stride 1, 3 on each side.
	PadSame PaddingMode = iota
	// PadValid does no padding ("VALID").
	PadValid
	// PadExplicit uses the explicit per-side paddings given with ConvBuilder.Padding or ConvBuilder.PaddingLowHigh.
	PadExplicit
)

// ConvBuilder configures a 2D convolution; create it with Conv, configure it, and call Done.
type ConvBuilder struct {
	scope             *model.Scope
	x                 *Node
	channels          int
	kernelH, kernelW  int
	stride            int
	mode              PaddingMode
	padLow, padHigh   [2]int // explicit paddings for (height, width).
	useBias           bool
	kernelInitializer model.VariableInitializer
}

// Conv prepares a 2D convolution of x, shaped [batch, height, width, channels] (NHWC), the equivalent of
// Flax's nn.Conv. Set Channels and KernelSize, optionally Stride, padding and NoBias, then call Done.
//
// Defaults follow Flax: stride 1, "SAME" padding, with bias. The kernel variable is "weights", shaped
// [kernelH, kernelW, inputChannels, outputChannels] and initialized LeCun normal; the bias is "biases",
// shaped [outputChannels] and initialized with zeros; both are created in the sub-scope "conv".
//
// It is computed as im2col (patches gathered with Slice and Concatenate) followed by one matrix
// multiplication, which is fast and has correct gradients on every backend; stride-1 "SAME" convolutions
// of odd kernels on maps of 16x16 and more use the flat channels-first form of conv_flat.go instead. For
// stride-1 convolutions larger than 1x1 the bias is folded into that product.
func Conv(scope *model.Scope, x *Node) *ConvBuilder {
	if x.Rank() != 4 {
		Panicf("layers.Conv: x must be shaped [batch, height, width, channels], got %s", x.Shape())
	}
	return &ConvBuilder{scope: scope, x: x, stride: 1, mode: PadSame, useBias: true}
}

// Channels sets the number of output channels (required).
func (c *ConvBuilder) Channels(channels int) *ConvBuilder {
	if channels <= 0 {
		Panicf("layers.Conv: Channels must be > 0, got %d", channels)
	}
	c.channels = channels
	return c
}

// KernelSize sets a square kernel size (required, unless KernelSizeHW is used).
func (c *ConvBuilder) KernelSize(size int) *ConvBuilder {
	return c.KernelSizeHW(size, size)
}

// KernelSizeHW sets the kernel height and width.
func (c *ConvBuilder) KernelSizeHW(height, width int) *ConvBuilder {
	if height <= 0 || width <= 0 {
		Panicf("layers.Conv: kernel size must be > 0, got %dx%d", height, width)
	}
	c.kernelH, c.kernelW = height, width
	return c
}

// Stride sets the stride, the same for height and width. Default 1.
func (c *ConvBuilder) Stride(stride int) *ConvBuilder {
	if stride <= 0 {
		Panicf("layers.Conv: stride must be > 0, got %d", stride)
	}
	c.stride = stride
	return c
}

// PadSame selects Flax's "SAME" padding (the default); see PadSame.
func (c *ConvBuilder) PadSame() *ConvBuilder {
	c.mode = PadSame
	return c
}

// NoPadding selects "VALID" convolution: no padding.
func (c *ConvBuilder) NoPadding() *ConvBuilder {
	c.mode = PadValid
	return c
}

// Padding sets an explicit zero padding of p on every side (e.g. 3 for the tutorial's 7x7 stem,
// Flax padding=((3,3),(3,3))).
func (c *ConvBuilder) Padding(p int) *ConvBuilder {
	return c.PaddingLowHigh(p, p, p, p)
}

// PaddingLowHigh sets explicit zero paddings: top, bottom (height) and left, right (width).
func (c *ConvBuilder) PaddingLowHigh(top, bottom, left, right int) *ConvBuilder {
	if top < 0 || bottom < 0 || left < 0 || right < 0 {
		Panicf("layers.Conv: paddings must be >= 0, got %d, %d, %d, %d", top, bottom, left, right)
	}
	c.mode = PadExplicit
	c.padLow = [2]int{top, left}
	c.padHigh = [2]int{bottom, right}
	return c
}

// NoBias removes the bias term.
func (c *ConvBuilder) NoBias() *ConvBuilder {
	c.useBias = false
	return c
}

// KernelInitializer replaces the kernel initializer (default LecunNormal; nil keeps the default).
func (c *ConvBuilder) KernelInitializer(initializer model.VariableInitializer) *ConvBuilder {
	c.kernelInitializer = initializer
	return c
}

// Done creates the variables and returns the convolved x, shaped [batch, outHeight, outWidth, channels].
func (c *ConvBuilder) Done() *Node {
	if c.channels == 0 || c.kernelH == 0 {
		Panicf("layers.Conv: Channels and KernelSize must be set before Done")
	}
	x := c.x
	dims := x.Shape().Dimensions
	padLow, padHigh := c.padLow, c.padHigh
	switch c.mode {
	case PadSame:
		padLow[0], padHigh[0] = SamePadding(dims[1], c.kernelH, c.stride)
		padLow[1], padHigh[1] = SamePadding(dims[2], c.kernelW, c.stride)
	case PadValid:
		padLow, padHigh = [2]int{}, [2]int{}
	}
	scope := c.scope.In("conv")
	init := c.kernelInitializer
	if init == nil {
		init = LecunNormal(scope)
	}
	dtype := x.DType()
	cin := dims[3]
	kernel := scope.WithInitializer(init).VariableWithShape("weights",
		shapes.Make(dtype, c.kernelH, c.kernelW, cin, c.channels)).NodeValue(x.Graph())
	var bias *Node
	if c.useBias {
		bias = scope.WithInitializer(ZerosInitializer).VariableWithShape("biases",
			shapes.Make(dtype, c.channels)).NodeValue(x.Graph())
	}
	return conv2D(x, kernel, bias, c.stride, padLow, padHigh)
}

// conv2DIsStride1 reports whether conv2DStride1 handles the convolution: stride 1 and paddings smaller
// than the kernel.
func conv2DIsStride1(kh, kw, stride int, padLow, padHigh [2]int) bool {
	return stride == 1 && padLow[0] <= kh-1 && padHigh[0] <= kh-1 && padLow[1] <= kw-1 && padHigh[1] <= kw-1
}

// SamePadding returns the low and high paddings of Flax/XLA "SAME" for one spatial axis.
func SamePadding(size, kernel, stride int) (low, high int) {
	out := (size + stride - 1) / stride
	total := max((out-1)*stride+kernel-size, 0)
	return total / 2, total - total/2
}

// Conv2D convolves x [batch, height, width, cin] with kernel [kh, kw, cin, cout] (cross-correlation, like
// Flax and XLA), with the given stride and zero paddings (padLow/padHigh are (height, width) pairs).
// It returns [batch, outHeight, outWidth, cout], outSize = (size + low + high - k) / stride + 1.
//
// It is computed as im2col followed by a single matrix multiplication (a 1x1 convolution is just the
// matrix multiplication), or, for stride-1 "SAME" odd kernels on large maps, in the flat layout of
// conv2DFlat. The gradients are written by hand (see matMul) so that every matrix product runs
// in a layout the pure Go backend multiplies directly: the kernel gradient is patchesᵀ·v with only the
// smaller operand transposed, and, for stride 1, the input gradient is the convolution of the output
// adjoint with the flipped, transposed kernel (instead of scattering the patches' gradient back with pads
// and additions).
func Conv2D(x, kernel *Node, stride int, padLow, padHigh [2]int) *Node {
	if x.Rank() != 4 || kernel.Rank() != 4 {
		Panicf("layers.Conv2D: x must be [batch, height, width, cin] and kernel [kh, kw, cin, cout], got %s and %s",
			x.Shape(), kernel.Shape())
	}
	if cin := kernel.Shape().Dim(2); x.Shape().Dim(3) != cin {
		Panicf("layers.Conv2D: x has %d channels but kernel expects %d (x %s, kernel %s)",
			x.Shape().Dim(3), cin, x.Shape(), kernel.Shape())
	}
	return conv2D(x, kernel, nil, stride, padLow, padHigh)
}

// conv2D is Conv2D plus bias [cout] if not nil. The flat form and the stride-1 im2col of kernels larger
// than 1x1 fold the bias into their matrix product (a row of ones in the taps or a column of ones in the
// patches, the bias beside the kernel), so that dbias comes out of the kernel gradient's product instead
// of a broadcast addition and its gradient's reduction; otherwise it is added to the result.
func conv2D(x, kernel, bias *Node, stride int, padLow, padHigh [2]int) *Node {
	kdims := kernel.Shape().Dimensions
	kh, kw, cin, cout := kdims[0], kdims[1], kdims[2], kdims[3]
	if conv2DIsStride1(kh, kw, stride, padLow, padHigh) {
		return stride1Conv(x, kernel, bias, padLow, padHigh)
	}
	if stride > 1 {
		return spaceToDepthConv(x, kernel, bias, stride, padLow, padHigh)
	}
	patches := Im2Col(x, kh, kw, stride, padLow, padHigh)
	pdims := patches.Shape().Dimensions
	batch, outH, outW := pdims[0], pdims[1], pdims[2]
	flat := Reshape(patches, batch*outH*outW, kh*kw*cin)
	out := Reshape(product(flat, Reshape(kernel, kh*kw*cin, cout)), batch, outH, outW, cout)
	if bias != nil {
		out = Add(out, ExpandLeftToRank(bias, 4))
	}
	return out
}

// conv2DStride1 is Conv2D for stride 1 and paddings smaller than the kernel, plus bias [cout] if not nil,
// with hand-written gradients: dx is the convolution of the output adjoint, padded by
// kernel-1-padding, with the kernel flipped in space and with its channel axes swapped; dkernel is
// patchesᵀ·v (contractRows). A bias is folded into the product for kernels larger than 1x1: the patches
// get a last column of ones and the kernel matrix a last row with the bias, so dbias comes out of the same
// patchesᵀ·v product.
func conv2DStride1(x, kernel, bias *Node, padLow, padHigh [2]int) *Node {
	kdims := kernel.Shape().Dimensions
	kh, kw, cin, cout := kdims[0], kdims[1], kdims[2], kdims[3]
	k := kh * kw * cin
	fuseBias := bias != nil && kh*kw > 1
	var adjoint *Node // d(loss)/d(output), [batch, outH, outW, cout].
	var kernelIn, biasIn *Node
	xIn := IdentityWithCustomGradient(x, func(_, _ *Node) *Node {
		if kh == 1 && kw == 1 {
			// Pointwise: [P, cout] · kernelᵀ -> [P, cin].
			dims := adjoint.Shape().Dimensions
			dx := dotNT(Reshape(adjoint, -1, cout), Reshape(kernelIn, cin, cout))
			return Reshape(dx, dims[0], dims[1], dims[2], cin)
		}
		flipped := TransposeAllAxes(Reverse(kernelIn, 0, 1), 0, 1, 3, 2) // [kh, kw, cout, cin]
		return conv2DNoGrad(adjoint, flipped,
			[2]int{kh - 1 - padLow[0], kw - 1 - padLow[1]}, [2]int{kh - 1 - padHigh[0], kw - 1 - padHigh[1]})
	})
	var patches *Node
	if fuseBias {
		patches = im2ColWithOnes(xIn, kh, kw, padLow, padHigh)
	} else {
		patches = Im2Col(xIn, kh, kw, 1, padLow, padHigh)
	}
	pdims := patches.Shape().Dimensions
	batch, outH, outW, kAug := pdims[0], pdims[1], pdims[2], pdims[3]
	p := batch * outH * outW
	flat := Reshape(patches, p, kAug)
	// dkernelAug is patchesᵀ·v, [kAug, cout], computed once per adjoint for the kernel and the folded bias.
	var dkernelAug, dkernelAdjoint *Node
	kernelGrad := func() *Node {
		if dkernelAdjoint != adjoint {
			dkernelAug = contractRows(flat, Reshape(adjoint, p, cout))
			dkernelAdjoint = adjoint
		}
		return dkernelAug
	}
	kernelIn = IdentityWithCustomGradient(kernel, func(_, _ *Node) *Node {
		dk := kernelGrad()
		if fuseBias {
			dk = Slice(dk, AxisRange(0, k), AxisRange())
		}
		return Reshape(dk, kh, kw, cin, cout)
	})
	kernelMatrix := Reshape(kernelIn, k, cout)
	if fuseBias {
		biasIn = IdentityWithCustomGradient(bias, func(_, _ *Node) *Node {
			return Reshape(Slice(kernelGrad(), AxisRange(k, k+1), AxisRange()), cout)
		})
		kernelMatrix = Concatenate([]*Node{kernelMatrix, Reshape(biasIn, 1, cout)}, 0)
	}
	out := patchesTimesKernel(flat, kernelMatrix)
	out = Reshape(out, batch, outH, outW, cout)
	if bias != nil && !fuseBias {
		out = Add(out, ExpandLeftToRank(bias, 4))
	}
	return IdentityWithCustomGradient(out, func(_, v *Node) *Node {
		adjoint = v
		return v
	})
}

// im2ColWithOnes is Im2Col (stride 1) with an extra last column of ones: [batch, outH, outW, kh*kw*c + 1].
func im2ColWithOnes(x *Node, kh, kw int, padLow, padHigh [2]int) *Node {
	x = PadSpatial(x, padLow, padHigh)
	dims := x.Shape().Dimensions
	outH, outW := dims[1]-kh+1, dims[2]-kw+1
	parts := make([]*Node, 0, kh*kw+1)
	for i := range kh {
		for j := range kw {
			parts = append(parts, Slice(x, AxisRange(), AxisRange(i, i+outH), AxisRange(j, j+outW), AxisRange()))
		}
	}
	parts = append(parts, Ones(x.Graph(), shapes.Make(x.DType(), dims[0], outH, outW, 1)))
	return Concatenate(parts, -1)
}

// conv2DNoGrad is a stride-1 im2col convolution for values whose gradient is never taken (the input
// gradient of conv2DStride1).
func conv2DNoGrad(x, kernel *Node, padLow, padHigh [2]int) *Node {
	kdims := kernel.Shape().Dimensions
	kh, kw, cin, cout := kdims[0], kdims[1], kdims[2], kdims[3]
	patches := Im2Col(x, kh, kw, 1, padLow, padHigh)
	pdims := patches.Shape().Dimensions
	out := patchesTimesKernel(Reshape(patches, -1, kh*kw*cin), Reshape(kernel, kh*kw*cin, cout))
	return Reshape(out, pdims[0], pdims[1], pdims[2], cout)
}

// Im2Col pads x [batch, height, width, channels] with zeros and gathers, for each output position of a
// kh x kw window moved with the given stride, the window's values: the result is shaped
// [batch, outHeight, outWidth, kh*kw*channels], ordered (row, column, channel), matching a kernel
// [kh, kw, channels, cout] reshaped to [kh*kw*channels, cout].
func Im2Col(x *Node, kh, kw, stride int, padLow, padHigh [2]int) *Node {
	x = PadSpatial(x, padLow, padHigh)
	dims := x.Shape().Dimensions
	height, width := dims[1], dims[2]
	if height < kh || width < kw {
		Panicf("layers.Im2Col: padded input %dx%d smaller than kernel %dx%d", height, width, kh, kw)
	}
	outH := (height-kh)/stride + 1
	outW := (width-kw)/stride + 1
	if kh == 1 && kw == 1 && stride == 1 {
		return x
	}
	parts := make([]*Node, 0, kh*kw)
	for i := range kh {
		for j := range kw {
			parts = append(parts, Slice(x,
				AxisRange(),
				AxisRange(i, i+stride*(outH-1)+1).Stride(stride),
				AxisRange(j, j+stride*(outW-1)+1).Stride(stride),
				AxisRange()))
		}
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return Concatenate(parts, -1)
}

// PadSpatial zero-pads the height and width axes of x [batch, height, width, channels]; padLow and padHigh
// are (height, width) pairs. It uses Concatenate, which (unlike graph.Pad) has a gradient.
func PadSpatial(x *Node, padLow, padHigh [2]int) *Node {
	for axis := 1; axis <= 2; axis++ {
		low, high := padLow[axis-1], padHigh[axis-1]
		if low == 0 && high == 0 {
			continue
		}
		parts := make([]*Node, 0, 3)
		zerosDims := x.Shape().Clone()
		if low > 0 {
			zerosDims.Dimensions[axis] = low
			parts = append(parts, Zeros(x.Graph(), zerosDims))
		}
		parts = append(parts, x)
		if high > 0 {
			zerosDims.Dimensions[axis] = high
			parts = append(parts, Zeros(x.Graph(), zerosDims))
		}
		x = Concatenate(parts, axis)
	}
	return x
}

// ConvTransposeBuilder configures a 2D transposed convolution; create it with ConvTranspose, configure
// it, and call Done.
type ConvTransposeBuilder struct {
	scope            *model.Scope
	x                *Node
	channels         int
	kernelH, kernelW int
	stride           int
	same             bool
	useBias          bool
}

// ConvTranspose prepares a 2D transposed convolution of x [batch, height, width, channels], the equivalent
// of Flax's nn.ConvTranspose (with its default transpose_kernel=False): the input is dilated by the stride
// (stride-1 zeros between values), padded, and convolved with the kernel, without flipping it.
// Set Channels and KernelSize, optionally Stride (default 1), padding (default "SAME") and NoBias,
// then call Done.
//
// With "SAME" padding the output size is input*stride: the tutorial's nn.ConvTranspose(dim, (4,4), (2,2))
// doubles the height and width (dilate by 2, pad 2 on each side, 4x4 convolution).
//
// The kernel variable is "weights", shaped [kernelH, kernelW, inputChannels, outputChannels] (as Flax),
// initialized LeCun normal; the bias is "biases" [outputChannels], zeros; both in the sub-scope
// "conv_transpose".
//
// The 4x4 stride-2 "SAME" case is computed with a sub-pixel decomposition: one 3x3 im2col over the
// (1-padded) undilated input and one matrix multiplication producing the 4 output phases, interleaved with
// reshapes (on maps of 16x16 and more: a 3x3 flat convolution to the 4 phases and one transpose). Other
// configurations dilate the input explicitly (Concatenate with zeros + Reshape) and use Conv2D.
func ConvTranspose(scope *model.Scope, x *Node) *ConvTransposeBuilder {
	if x.Rank() != 4 {
		Panicf("layers.ConvTranspose: x must be shaped [batch, height, width, channels], got %s", x.Shape())
	}
	return &ConvTransposeBuilder{scope: scope, x: x, stride: 1, same: true, useBias: true}
}

// Channels sets the number of output channels (required).
func (c *ConvTransposeBuilder) Channels(channels int) *ConvTransposeBuilder {
	if channels <= 0 {
		Panicf("layers.ConvTranspose: Channels must be > 0, got %d", channels)
	}
	c.channels = channels
	return c
}

// KernelSize sets a square kernel size (required).
func (c *ConvTransposeBuilder) KernelSize(size int) *ConvTransposeBuilder {
	if size <= 0 {
		Panicf("layers.ConvTranspose: kernel size must be > 0, got %d", size)
	}
	c.kernelH, c.kernelW = size, size
	return c
}

// Stride sets the stride (the input dilation), the same for height and width. Default 1.
func (c *ConvTransposeBuilder) Stride(stride int) *ConvTransposeBuilder {
	if stride <= 0 {
		Panicf("layers.ConvTranspose: stride must be > 0, got %d", stride)
	}
	c.stride = stride
	return c
}

// PadSame selects Flax's "SAME" padding (the default): output size = input size * stride.
func (c *ConvTransposeBuilder) PadSame() *ConvTransposeBuilder {
	c.same = true
	return c
}

// NoPadding selects Flax's "VALID" padding: output size = (input-1)*stride + max(kernel, stride).
func (c *ConvTransposeBuilder) NoPadding() *ConvTransposeBuilder {
	c.same = false
	return c
}

// NoBias removes the bias term.
func (c *ConvTransposeBuilder) NoBias() *ConvTransposeBuilder {
	c.useBias = false
	return c
}

// Done creates the variables and returns the result, shaped [batch, outHeight, outWidth, channels].
func (c *ConvTransposeBuilder) Done() *Node {
	if c.channels == 0 || c.kernelH == 0 {
		Panicf("layers.ConvTranspose: Channels and KernelSize must be set before Done")
	}
	x := c.x
	dtype := x.DType()
	cin := x.Shape().Dim(3)
	scope := c.scope.In("conv_transpose")
	kernel := scope.WithInitializer(LecunNormal(scope)).VariableWithShape("weights",
		shapes.Make(dtype, c.kernelH, c.kernelW, cin, c.channels)).NodeValue(x.Graph())
	out := ConvTranspose2D(x, kernel, c.stride, c.same)
	if c.useBias {
		bias := scope.WithInitializer(ZerosInitializer).VariableWithShape("biases",
			shapes.Make(dtype, c.channels)).NodeValue(x.Graph())
		out = Add(out, ExpandLeftToRank(bias, 4))
	}
	return out
}

// ConvTransposePadding returns the (low, high) padding jax.lax.conv_transpose applies to the dilated input
// for one axis, for "SAME" (same=true) or "VALID" padding.
func ConvTransposePadding(kernel, stride int, same bool) (low, high int) {
	var padLen int
	if same {
		padLen = kernel + stride - 2
		if stride > kernel-1 {
			low = kernel - 1
		} else {
			low = (padLen + 1) / 2
		}
	} else {
		padLen = kernel + stride - 2 + max(kernel-stride, 0)
		low = kernel - 1
	}
	return low, padLen - low
}

// ConvTranspose2D computes Flax/JAX's transposed convolution (transpose_kernel=False) of x
// [batch, height, width, cin] with kernel [kh, kw, cin, cout]: x dilated by stride, padded as
// ConvTransposePadding, then cross-correlated with kernel.
func ConvTranspose2D(x, kernel *Node, stride int, same bool) *Node {
	kdims := kernel.Shape().Dimensions
	if x.Rank() != 4 || kernel.Rank() != 4 || x.Shape().Dim(3) != kdims[2] {
		Panicf("layers.ConvTranspose2D: x must be [batch, height, width, cin] and kernel [kh, kw, cin, cout], got %s and %s",
			x.Shape(), kernel.Shape())
	}
	if same && stride == 2 && kdims[0] == 4 && kdims[1] == 4 {
		return convTranspose4x4Stride2Same(x, kernel)
	}
	lowH, highH := ConvTransposePadding(kdims[0], stride, same)
	lowW, highW := ConvTransposePadding(kdims[1], stride, same)
	return Conv2D(DilateSpatial(x, stride), kernel, 1, [2]int{lowH, lowW}, [2]int{highH, highW})
}

// DilateSpatial inserts stride-1 zeros between consecutive values of the height and width axes of
// x [batch, height, width, channels]: size n becomes (n-1)*stride+1. It uses Concatenate and Reshape.
func DilateSpatial(x *Node, stride int) *Node {
	if stride == 1 {
		return x
	}
	for axis := 1; axis <= 2; axis++ {
		dims := x.Shape().Dimensions
		n := dims[axis]
		// [..., n, 1, ...] concatenated with [..., n, stride-1, ...] zeros -> [..., n*stride, ...].
		expanded := InsertAxes(x, axis+1)
		zerosShape := expanded.Shape().Clone()
		zerosShape.Dimensions[axis+1] = stride - 1
		interleaved := Concatenate([]*Node{expanded, Zeros(x.Graph(), zerosShape)}, axis+1)
		newDims := append([]int(nil), dims...)
		newDims[axis] = n * stride
		x = Reshape(interleaved, newDims...)
		specs := make([]SliceAxisSpec, 4)
		for i := range specs {
			specs[i] = AxisRange()
		}
		specs[axis] = AxisRange(0, (n-1)*stride+1)
		x = Slice(x, specs...)
	}
	return x
}

// convTranspose4x4Stride2Same is the sub-pixel form of ConvTranspose2D for a 4x4 kernel, stride 2, "SAME"
// (dilate by 2, pad 2 each side). In one dimension, output 2m is x[m-1]*w[0] + x[m]*w[2] and output 2m+1 is
// x[m]*w[1] + x[m+1]*w[3]. With xp = x padded by 1, both phases read xp[m+d], d in {0,1,2}: a 3x3 im2col of
// xp and one matmul with a [3*3*cin, 2*2*cout] kernel (subPixelKernel) yield the 4 phases, which are
// interleaved with reshapes (and, from 16x16 on, where the 3x3 convolution is a flat one, a transpose).
func convTranspose4x4Stride2Same(x, kernel *Node) *Node {
	dims := x.Shape().Dimensions
	batch, height, width, cin := dims[0], dims[1], dims[2], dims[3]
	cout := kernel.Shape().Dim(3)
	effKernel := subPixelKernel(kernel)

	if native(x) || conv2DFlatApplies(height, width, 3, 3, 1, [2]int{1, 1}, [2]int{1, 1}) {
		// The 3x3 convolution to the 4 phases [b, my, mx, (py, px, cout)] (natively, or in the flat
		// layout), then one transpose to [b, my, py, mx, px, cout] interleaves them.
		phases := stride1Conv(x, Reshape(effKernel, 3, 3, cin, 4*cout), nil, [2]int{1, 1}, [2]int{1, 1})
		phases = TransposeAllAxes(Reshape(phases, batch, height, width, 2, 2, cout), 0, 1, 3, 2, 4, 5)
		return Reshape(phases, batch, 2*height, 2*width, cout)
	}
	patches := Reshape(Im2Col(x, 3, 3, 1, [2]int{1, 1}, [2]int{1, 1}), batch*height*width, 9*cin)
	// One product per output row phase py, each [b*my*mx, (px, cout)]; stacking them on a new axis after my
	// (a Concatenate of contiguous rows) interleaves the rows without a transpose.
	rowPhases := make([]*Node, 2)
	for py := range 2 {
		kernelPy := Reshape(Slice(Reshape(effKernel, 9*cin, 2, 2*cout), AxisRange(), AxisElem(py), AxisRange()),
			9*cin, 2*cout)
		rowPhases[py] = Reshape(product(patches, kernelPy), batch, height, 1, width*2*cout)
	}
	out := Concatenate(rowPhases, 2)                    // [b, my, py, (mx, px, cout)]
	return Reshape(out, batch, 2*height, 2*width, cout) // row 2*my+py, column 2*mx+px.
}

// subPixelTaps[d][p] is the kernel tap ky*4+kx that multiplies xp[my+dy, mx+dx] (d = dy*3+dx, xp the
// input padded by 1) for output phase (py, px) (p = py*2+px) of a 4x4 stride-2 "SAME" transposed
// convolution, or -1 if none does. Along one axis, even outputs are x[m-1]·w0 + x[m]·w2 and odd ones
// x[m]·w1 + x[m+1]·w3: offset 0, 1, 2 takes tap 0, 2, - for phase 0 and -, 1, 3 for phase 1.
var subPixelTaps = func() (taps [9][4]int) {
	tap := [2][3]int{{0, 2, -1}, {-1, 1, 3}} // [phase][offset]
	for d := range 9 {
		for p := range 4 {
			ky, kx := tap[p/2][d/3], tap[p%2][d%3]
			taps[d][p] = -1
			if ky >= 0 && kx >= 0 {
				taps[d][p] = ky*4 + kx
			}
		}
	}
	return taps
}()

// subPixelKernel rearranges a 4x4 kernel [4, 4, cin, cout] into the kernel [3*3*cin, 2*2*cout] of the 3x3
// convolution that yields the 4 output phases: the block of rows (dy, dx, ·) and columns (py, px, ·) holds
// tap subPixelTaps[dy*3+dx][py*2+px] of the kernel, [cin, cout], or zeros. Each tap lands in exactly one
// block, so the kernel is built with Concatenate, and the gradient (written by hand) takes the 16 blocks
// back out of the adjoint: no transposes and no products with 0/1 selection tensors.
func subPixelKernel(kernel *Node) *Node {
	cin, cout := kernel.Shape().Dim(2), kernel.Shape().Dim(3)
	var adjoint, kernelIn *Node
	kernelIn = IdentityWithCustomGradient(kernel, func(_, _ *Node) *Node {
		blocks := make([]*Node, 16)
		for d, row := range subPixelTaps {
			for p, tap := range row {
				if tap >= 0 {
					blocks[tap] = Slice(adjoint, AxisRange(d*cin, (d+1)*cin), AxisRange(p*cout, (p+1)*cout))
				}
			}
		}
		return Reshape(Concatenate(blocks, 0), 4, 4, cin, cout)
	})
	taps := Reshape(kernelIn, 16, cin, cout)
	zeros := Zeros(kernel.Graph(), shapes.Make(kernel.DType(), cin, cout))
	rows := make([]*Node, 0, 9)
	for _, row := range subPixelTaps {
		cols := make([]*Node, 0, 4)
		for _, tap := range row {
			if tap < 0 {
				cols = append(cols, zeros)
			} else {
				cols = append(cols, Reshape(Slice(taps, AxisElem(tap)), cin, cout))
			}
		}
		rows = append(rows, Concatenate(cols, 1))
	}
	return IdentityWithCustomGradient(Concatenate(rows, 0), func(_, v *Node) *Node {
		adjoint = v
		return v
	})
}

// spaceToDepthConv is a convolution with stride s > 1, written as a stride-1 one so that every
// engine differentiates it (ONNX Runtime cannot differentiate a strided convolution, and the
// gradient of a strided Slice is an interior padding it lacks). The padded input, grown at the
// high end to a multiple of s, is cut into s x s cells whose values become channels:
// [b, H/s, W/s, (s, s, cin)]; the kernel, grown with zeros to a multiple of s, is rearranged the
// same way to [k/s, k/s, (s, s, cin), cout]. Output o of the strided convolution reads padded rows
// s·o + s·a + p for tap s·a + p, which is cell o + a, row p of the cell: a VALID stride-1
// convolution of the cells, cropped to the strided output size.
func spaceToDepthConv(x, kernel, bias *Node, s int, padLow, padHigh [2]int) *Node {
	kdims := kernel.Shape().Dimensions
	kh, kw, cin, cout := kdims[0], kdims[1], kdims[2], kdims[3]
	dims := x.Shape().Dimensions
	batch := dims[0]
	var outSize, cells, kcells [2]int
	var extra [2]int
	for i, k := range []int{kh, kw} {
		padded := dims[i+1] + padLow[i] + padHigh[i]
		if padded < k {
			Panicf("layers.Conv2D: padded input %d smaller than kernel %d", padded, k)
		}
		outSize[i] = (padded-k)/s + 1
		kcells[i] = (k + s - 1) / s
		cells[i] = max((padded+s-1)/s, outSize[i]+kcells[i]-1)
		extra[i] = cells[i]*s - padded
	}
	x = PadSpatial(x, padLow, [2]int{padHigh[0] + extra[0], padHigh[1] + extra[1]})
	x = Reshape(x, batch, cells[0], s, cells[1], s, cin)
	x = Reshape(TransposeAllAxes(x, 0, 1, 3, 2, 4, 5), batch, cells[0], cells[1], s*s*cin)
	if kh != kcells[0]*s || kw != kcells[1]*s {
		kernel = PadSpatial(Reshape(kernel, 1, kh, kw, cin*cout), [2]int{}, [2]int{kcells[0]*s - kh, kcells[1]*s - kw})
	}
	kernel = Reshape(kernel, kcells[0], s, kcells[1], s, cin, cout)
	kernel = Reshape(TransposeAllAxes(kernel, 0, 2, 1, 3, 4, 5), kcells[0], kcells[1], s*s*cin, cout)
	out := stride1Conv(x, kernel, bias, [2]int{}, [2]int{})
	if d := out.Shape().Dimensions; d[1] != outSize[0] || d[2] != outSize[1] {
		out = Slice(out, AxisRange(), AxisRange(0, outSize[0]), AxisRange(0, outSize[1]), AxisRange())
	}
	return out
}
