package layers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// TestDotNT checks a·bᵀ on both of dotNT's paths (explicit transpose below smallProductMACs, the
// transposed layout above) against a float64 loop, for matrices and batches of matrices.
func TestDotNT(t *testing.T) {
	b := getBackend(t)
	rng := rand.New(rand.NewPCG(21, 22))
	for _, tc := range []struct{ g, m, k, n int }{
		{0, 5, 3, 4}, {0, 128, 256, 128}, {3, 4, 6, 5}, {4, 64, 128, 128},
	} {
		t.Run(fmt.Sprintf("g=%d m=%d k=%d n=%d large=%v", tc.g, tc.m, tc.k, tc.n,
			max(tc.g, 1)*tc.m*tc.k*tc.n >= smallProductMACs), func(t *testing.T) {
			g := max(tc.g, 1)
			a := make([]float64, g*tc.m*tc.k)
			bv := make([]float64, g*tc.n*tc.k)
			for i := range a {
				a[i] = rng.NormFloat64()
			}
			for i := range bv {
				bv[i] = rng.NormFloat64()
			}
			dimsA, dimsB := dotNTDims(tc.g, tc.m, tc.k, tc.n)
			e := graph.MustNewExec(b, func(a, b *graph.Node) *graph.Node { return dotNT(a, b) })
			got := tensors.MustCopyFlatData[float64](e.MustCall(
				tensors.FromFlatDataAndDimensions(a, dimsA...), tensors.FromFlatDataAndDimensions(bv, dimsB...))[0])
			if len(got) != g*tc.m*tc.n {
				t.Fatalf("got %d values, want %d", len(got), g*tc.m*tc.n)
			}
			worst := 0.0
			for gi := range g {
				for i := range tc.m {
					for j := range tc.n {
						want := 0.0
						for l := range tc.k {
							want += a[(gi*tc.m+i)*tc.k+l] * bv[(gi*tc.n+j)*tc.k+l]
						}
						worst = max(worst, math.Abs(got[(gi*tc.m+i)*tc.n+j]-want))
					}
				}
			}
			if worst > 1e-10 {
				t.Errorf("max abs diff %g", worst)
			}
		})
	}
}

// dotNTDims returns the shapes of dotNT's operands a [m, k] and b [n, k], or [g, m, k] and [g, n, k] for
// g > 0.
func dotNTDims(g, m, k, n int) (dimsA, dimsB []int) {
	if g > 0 {
		return []int{g, m, k}, []int{g, n, k}
	}
	return []int{m, k}, []int{n, k}
}

// BenchmarkDotNT times a·bᵀ for products below smallProductMACs taken as is (the backend's kernel for a
// right operand laid out [n, k]) and by dotNT (which transposes it first), at the U-Net's shapes:
// attention logits at 8x8 and 4x4 (batch·heads matrices of positions x head features) and Dense input
// gradients: go test ./layers -run '^$' -bench DotNT.
func BenchmarkDotNT(b *testing.B) {
	be := getBackend(b)
	for _, tc := range []struct{ g, m, k, n int }{
		{32, 64, 16, 64}, {32, 16, 32, 16}, {0, 128, 128, 128}, {0, 512, 64, 64}, {0, 8, 128, 64},
	} {
		g := max(tc.g, 1)
		dimsA, dimsB := dotNTDims(tc.g, tc.m, tc.k, tc.n)
		a := tensors.FromFlatDataAndDimensions(make([]float32, g*tc.m*tc.k), dimsA...)
		bt := tensors.FromFlatDataAndDimensions(make([]float32, g*tc.n*tc.k), dimsB...)
		for _, impl := range []struct {
			name string
			dot  func(a, b *graph.Node) *graph.Node
		}{
			{"as-is", dotLastAxes},
			{"dotNT", dotNT},
		} {
			b.Run(fmt.Sprintf("g=%d,m=%d,k=%d,n=%d/%s", tc.g, tc.m, tc.k, tc.n, impl.name), func(b *testing.B) {
				benchmarkExec(b, graph.MustNewExec(be, impl.dot), a, bt)
			})
		}
	}
}
