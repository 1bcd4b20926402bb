package layers

import (
	. "github.com/gomlx/gomlx/core/graph"         //nolint:revive // GoMLX style.
	. "github.com/gomlx/gomlx/support/exceptions" //nolint:revive // GoMLX style.
)

// This file holds matrix products whose gradients are written by hand so that, on GoMLX's pure Go backend,
// every product runs in a layout its matmul kernels take directly.
//
// The backend's DotGeneral multiplies lhs [batch, n, k] (contracting axis last) by rhs [batch, k, m] or
// [batch, m, k]; any other layout is first transposed, element by element (~10 ns per value). GoMLX's
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
		return DotGeneral(adjoint, []int{1}, nil, wIn, []int{1}, nil) // v [P, M] · wᵀ -> [P, K]
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
