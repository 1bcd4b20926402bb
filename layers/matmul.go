package layers

import (
	. "github.com/gomlx/gomlx/core/graph"         //nolint:revive // GoMLX style.
	. "github.com/gomlx/gomlx/support/exceptions" //nolint:revive // GoMLX style.
)

// This file holds matrix products whose gradients are written by hand so that, on GoMLX's pure Go backend,
// every product runs in a layout its matmul kernels take directly.
//
// The backend's DotGeneral multiplies lhs [batch, n, k] (contracting axis last) by rhs [batch, k, m] or
// [batch, m, k]; any other layout is first transposed, element by element. GoMLX's
// automatic gradient of a[P,K]·w[K,M] asks for dw = aᵀ·v, contracting the first axis of both operands: the
// backend then transposes both a and v, and GoMLX adds a Transpose (even an identity one, which the backend
// still copies) after every gradient product. Here dw is computed as (vᵀ)·a or (aᵀ)·v, transposing only
// the smaller operand, and da = v·wᵀ is already in a native layout.
//
// The custom gradients use IdentityWithCustomGradient: the output's identity captures the output adjoint v,
// and the identities on the inputs replace the automatic gradients (whose nodes are left unused, so the
// backend never runs them).

// matMul returns a·w for a [P, K] and w [K, M], with the gradients described above.
func matMul(a, w *Node) *Node {
	if a.Rank() != 2 || w.Rank() != 2 || a.Shape().Dim(1) != w.Shape().Dim(0) {
		Panicf("layers.matMul: want a [P, K] and w [K, M], got %s and %s", a.Shape(), w.Shape())
	}
	// The gradient functions use the identities' outputs (aIn, wIn), not a and w: an identity whose input
	// is still needed afterwards makes the backend copy it.
	var adjoint *Node // v = d(loss)/d(output), [P, M], set while building the gradient.
	var aIn, wIn *Node
	aIn = IdentityWithCustomGradient(a, func(_, _ *Node) *Node {
		return dotNT(adjoint, wIn) // v [P, M] · wᵀ -> [P, K]
	})
	wIn = IdentityWithCustomGradient(w, func(_, _ *Node) *Node {
		return contractRows(aIn, adjoint)
	})
	out := Dot(aIn, wIn).Product()
	return IdentityWithCustomGradient(out, func(_, v *Node) *Node {
		adjoint = v
		return v
	})
}

// contractRows returns aᵀ·b, [K, M], for a [P, K] and b [P, M]: the contraction over the (long) row axis
// that weight gradients need. The smaller of a and b is transposed so that the product has a native layout.
func contractRows(a, b *Node) *Node {
	k, m := a.Shape().Dim(1), b.Shape().Dim(1)
	if k <= m {
		// [K, P] · [P, M] -> [K, M].
		return DotGeneral(transpose2D(a), []int{1}, nil, b, []int{0}, nil)
	}
	// ([M, P] · [P, K])ᵀ -> [K, M]; the final transpose is of the small result.
	return transpose2D(DotGeneral(transpose2D(b), []int{1}, nil, a, []int{0}, nil))
}

// transpose2D transposes a matrix.
func transpose2D(x *Node) *Node {
	return TransposeAllAxes(x, 1, 0)
}

// patchesTimesKernel returns patches·kernel for patches [P, K] and kernel [K, N], without gradients of its
// own (callers write them). The pure Go backend's large matmul packs its left operand and computes 4 rows by
// 32 columns at a time: for N <= 16 half of that is idle while the big patch matrix is packed. For such
// narrow products that are large enough for that kernel (P·K·N >= 8 M) and long enough in K (>= 128), the
// product is computed as (kernelᵀ·patchesᵀ)ᵀ: a native layout ([N, K] by [P, K], contracting the last axes)
// with the small kernel on the left, and the [N, P] result transposed; smaller products and short K (the
// 7x7 stem on one channel) are slower that way, so they keep the plain product (BenchmarkConv2D).
func patchesTimesKernel(patches, kernel *Node) *Node {
	p, k, n := patches.Shape().Dim(0), kernel.Shape().Dim(0), kernel.Shape().Dim(1)
	if n > 16 || k < 128 || p*k*n < 8<<20 {
		return Dot(patches, kernel).Product()
	}
	return transpose2D(DotGeneral(transpose2D(kernel), []int{1}, nil, patches, []int{1}, nil))
}

// smallProductMACs is the size (m·k·n multiply-adds) below which GoMLX's pure Go backend multiplies
// with its "small" kernels, where a right operand laid out [n, k] (contracting its last axis) is
// slower than one laid out [k, n], explicit transpose included (BenchmarkDotNT).
const smallProductMACs = 4 << 20

// dotNT returns a·bᵀ, contracting the last axes, for a [m, k] and b [n, k] (-> [m, n]) or, batched over
// the first axis, a [g, m, k] and b [g, n, k] (-> [g, m, n]). Below smallProductMACs, a matrix b is
// transposed first, so that the backend's small kernels see the layout they multiply fast; batched
// products (attention's) and larger ones are taken as they are (BenchmarkDotNT).
func dotNT(a, b *Node) *Node {
	rank := a.Rank()
	if (rank != 2 && rank != 3) || b.Rank() != rank || a.Shape().Dim(-1) != b.Shape().Dim(-1) {
		Panicf("layers.dotNT: want a [(g,) m, k] and b [(g,) n, k], got %s and %s", a.Shape(), b.Shape())
	}
	if rank == 3 || a.Shape().Size()*b.Shape().Dim(-2) >= smallProductMACs {
		return dotLastAxes(a, b)
	}
	return DotGeneral(a, []int{1}, nil, transpose2D(b), []int{0}, nil)
}

// dotLastAxes returns a·bᵀ as one DotGeneral contracting the last axes of a [(g,) m, k] and b [(g,) n, k]
// (batched over the first axis for rank 3): b in the layout the backend's small kernels multiply slowly.
func dotLastAxes(a, b *Node) *Node {
	rank := a.Rank()
	var batch []int
	if rank == 3 {
		batch = []int{0}
	}
	return DotGeneral(a, []int{rank - 1}, batch, b, []int{rank - 1}, batch)
}
