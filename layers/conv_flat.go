package layers

import (
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
)

// This file holds the "flat" form of a stride-1 convolution with "SAME" padding of an odd kernel, used on
// large feature maps. On the pure Go backend it is faster than the im2col of conv2DStride1 (with both
// gradients, batch 8: 1.1-1.6x for the U-Net's 3x3 kernels on 16x16 and 32x32 maps, 5x for the 7x7 stem;
// see BenchmarkConv2D).
//
// The im2col there gathers each kernel tap's window with a Slice, which the backend copies value by value,
// and multiplies the patches by the kernel with the narrow kernel on the right, which leaves half of the
// backend's 4x32 matmul kernel idle for 16 output channels. Here the input is laid out channels first,
// each image's rows padded with pw zero columns and followed by ph zero rows, and flattened:
// [channels, batch*(H+ph)*(W+pw)]. In that layout every tap's window is the whole array shifted by a
// constant offset (the zeros of the neighbouring row or image stand in for the padding), and a shift is a
// Concatenate with zeros, which the backend copies in contiguous runs. The product then has the kernel
// on the left ([cout, taps*cin] by [taps*cin, positions]). Only the result is cropped with a Slice, once.

// flatLayout describes the flat channels-first layout of one [batch, height, width, channels] tensor.
type flatLayout struct {
	batch, height, width int
	ph, pw               int // zero rows after each image, zero columns after each row: the kernel is (2ph+1) x (2pw+1).
}

// newFlatLayout returns the layout for a kh x kw "SAME" convolution (kh, kw odd) of [batch, height, width, c] maps.
func newFlatLayout(batch, height, width, kh, kw int) flatLayout {
	return flatLayout{batch: batch, height: height, width: width, ph: (kh - 1) / 2, pw: (kw - 1) / 2}
}

// rowLen is the length of one padded row.
func (l flatLayout) rowLen() int { return l.width + l.pw }

// positions is the flat length: batch * (height+ph) * (width+pw).
func (l flatLayout) positions() int { return l.batch * (l.height + l.ph) * l.rowLen() }

// margin is the largest tap offset, ph rows and pw columns: the zeros added on each side of the shifted copies.
func (l flatLayout) margin() int { return l.ph*l.rowLen() + l.pw }

// toFlat lays out v [batch, height, width, c] as [c, positions], with zeros in the padding.
func (l flatLayout) toFlat(v *Node) *Node {
	c := v.Shape().Dim(3)
	v = TransposeAllAxes(v, 3, 0, 1, 2) // [c, batch, height, width]
	g := v.Graph()
	if l.pw > 0 {
		v = Concatenate([]*Node{v, Zeros(g, shapes.Make(v.DType(), c, l.batch, l.height, l.pw))}, 3)
	}
	if l.ph > 0 {
		v = Concatenate([]*Node{v, Zeros(g, shapes.Make(v.DType(), c, l.batch, l.ph, l.rowLen()))}, 2)
	}
	return Reshape(v, c, l.positions())
}

// fromExtended crops f [c, positions + 2*margin] (position p at column p+margin, as the products of taps
// return it) back to [batch, height, width, c].
func (l flatLayout) fromExtended(f *Node) *Node {
	c := f.Shape().Dim(0)
	m := l.margin()
	f = Reshape(Slice(f, AxisRange(), AxisRange(m, m+l.positions())), c, l.batch, l.height+l.ph, l.rowLen())
	if l.ph > 0 || l.pw > 0 {
		f = Slice(f, AxisRange(), AxisRange(), AxisRange(0, l.height), AxisRange(0, l.width))
	}
	return TransposeAllAxes(f, 1, 2, 3, 0)
}

// extend pads f [c, positions] with margin zeros on each side: the column layout of the taps' products.
func (l flatLayout) extend(f *Node) *Node {
	z := Zeros(f.Graph(), shapes.Make(f.DType(), f.Shape().Dim(0), l.margin()))
	return Concatenate([]*Node{z, f, z}, 1)
}

// taps returns the kernel taps' shifted copies of f [c, positions] (zeros in the padding), stacked as
// [kh*kw*c (+1), positions + 2*margin] in (row, column, channel) order, the order of a kernel
// [kh, kw, c, cout] reshaped to [kh*kw*c, cout]; withOnes appends a row of ones (for a folded bias).
// Row (i, j, ch), column p+margin holds f[ch, p + (i-ph)*rowLen + (j-pw)].
func (l flatLayout) taps(f *Node, withOnes bool) *Node {
	g := f.Graph()
	c := f.Shape().Dim(0)
	m := l.margin()
	zeros := func(n int) *Node { return Zeros(g, shapes.Make(f.DType(), c, n)) }
	parts := make([]*Node, 0, (2*l.ph+1)*(2*l.pw+1)+1)
	for i := range 2*l.ph + 1 {
		for j := range 2*l.pw + 1 {
			offset := (i-l.ph)*l.rowLen() + (j - l.pw)
			shifted := make([]*Node, 0, 3)
			if m-offset > 0 {
				shifted = append(shifted, zeros(m-offset))
			}
			shifted = append(shifted, f)
			if m+offset > 0 {
				shifted = append(shifted, zeros(m+offset))
			}
			parts = append(parts, Concatenate(shifted, 1))
		}
	}
	if withOnes {
		parts = append(parts, Ones(g, shapes.Make(f.DType(), 1, l.positions()+2*m)))
	}
	return Concatenate(parts, 0)
}

// conv2DFlatApplies reports whether conv2DFlat computes the convolution: stride 1, an odd kernel larger
// than 1x1 with "SAME" padding ((k-1)/2 on each side), on feature maps of at least flatMinPositions
// positions per image, where it is faster than the im2col (see BenchmarkConv2D).
func conv2DFlatApplies(height, width, kh, kw, stride int, padLow, padHigh [2]int) bool {
	ph, pw := (kh-1)/2, (kw-1)/2
	return stride == 1 && kh%2 == 1 && kw%2 == 1 && kh*kw > 1 &&
		padLow == [2]int{ph, pw} && padHigh == [2]int{ph, pw} && height*width >= flatMinPositions
}

// flatMinPositions is the smallest height*width for which conv2DFlat is used (see BenchmarkConv2D: on par
// with the im2col at 8x8, faster from 16x16 up). A variable so that benchmarks can compare the two.
var flatMinPositions = 16 * 16

// conv2DFlat is conv2DStride1 for an odd kernel [kh, kw, cin, cout] with "SAME" padding, plus bias [cout]
// if not nil (folded into the product as a row of ones), computed in the flat layout described above, with
// hand-written gradients: dkernel (and dbias) is the product of the output adjoint, laid out the same way,
// with the taps; dx is the flat convolution of that adjoint with the kernel flipped in space and its
// channel axes swapped.
func conv2DFlat(x, kernel, bias *Node) *Node {
	dims := x.Shape().Dimensions
	kdims := kernel.Shape().Dimensions
	kh, kw, cin, cout := kdims[0], kdims[1], kdims[2], kdims[3]
	l := newFlatLayout(dims[0], dims[1], dims[2], kh, kw)
	k := kh * kw * cin

	var adjointFlat *Node // d(loss)/d(output) in the flat layout, [cout, positions].
	var kernelIn, biasIn, taps *Node
	// dkernelAug is (dkernel; dbias)ᵀ, [cout, k(+1)], computed once for the kernel and the bias.
	var dkernelAug, dkernelAdjoint *Node
	kernelGrad := func() *Node {
		if dkernelAdjoint != adjointFlat {
			dkernelAug = dotNT(l.extend(adjointFlat), taps)
			dkernelAdjoint = adjointFlat
		}
		return dkernelAug
	}
	xIn := IdentityWithCustomGradient(x, func(_, _ *Node) *Node {
		// flipped[ci, (i, j, co)] = kernel[kh-1-i, kw-1-j, ci, co].
		flipped := Reshape(TransposeAllAxes(Reverse(kernelIn, 0, 1), 2, 0, 1, 3), cin, kh*kw*cout)
		return l.fromExtended(DotGeneral(flipped, []int{1}, nil, l.taps(adjointFlat, false), []int{0}, nil))
	})
	taps = l.taps(l.toFlat(xIn), bias != nil)
	kernelIn = IdentityWithCustomGradient(kernel, func(_, _ *Node) *Node {
		dk := kernelGrad()
		if bias != nil {
			dk = Slice(dk, AxisRange(), AxisRange(0, k))
		}
		return Reshape(transpose2D(dk), kh, kw, cin, cout)
	})
	kernelT := transpose2D(Reshape(kernelIn, k, cout)) // [cout, k]
	if bias != nil {
		biasIn = IdentityWithCustomGradient(bias, func(_, _ *Node) *Node {
			return Reshape(Slice(kernelGrad(), AxisRange(), AxisRange(k, k+1)), cout)
		})
		kernelT = Concatenate([]*Node{kernelT, Reshape(biasIn, cout, 1)}, 1)
	}
	out := l.fromExtended(DotGeneral(kernelT, []int{1}, nil, taps, []int{0}, nil))
	return IdentityWithCustomGradient(out, func(_, v *Node) *Node {
		adjointFlat = l.toFlat(v)
		return v
	})
}
