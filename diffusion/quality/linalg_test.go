package quality

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// randomSymmetric returns a random symmetric matrix with entries ~ N(0, 1).
func randomSymmetric(rng *rand.Rand, n int) *Matrix {
	m := NewMatrix(n)
	for i := range n {
		for j := i; j < n; j++ {
			v := rng.NormFloat64()
			m.Set(i, j, v)
			m.Set(j, i, v)
		}
	}
	return m
}

// randomSPD returns A·Aᵀ/n + eps·I for a random n x rank matrix A: PSD of the given rank plus eps.
func randomSPD(rng *rand.Rand, n, rank int, eps float64) *Matrix {
	a := make([]float64, n*rank)
	for i := range a {
		a[i] = rng.NormFloat64()
	}
	m := NewMatrix(n)
	for i := range n {
		for j := range n {
			s := 0.0
			for k := range rank {
				s += a[i*rank+k] * a[j*rank+k]
			}
			m.Set(i, j, s/float64(rank))
		}
		m.Data[i*n+i] += eps
	}
	return m
}

func maxAbsDiff(a, b *Matrix) float64 {
	d := 0.0
	for i := range a.Data {
		d = max(d, math.Abs(a.Data[i]-b.Data[i]))
	}
	return d
}

func TestSymmetricEigenKnown(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rows   [][]float64
		values []float64
	}{
		{"1x1", [][]float64{{-3}}, []float64{-3}},
		{"diagonal", [][]float64{{1, 0, 0}, {0, 5, 0}, {0, 0, -2}}, []float64{5, 1, -2}},
		{"2x2", [][]float64{{2, 1}, {1, 2}}, []float64{3, 1}},
		{"zero", [][]float64{{0, 0}, {0, 0}}, []float64{0, 0}},
		// Tridiagonal (2, -1): eigenvalues 2 - 2 cos(kπ/(n+1)).
		{"tridiagonal", [][]float64{{2, -1, 0, 0}, {-1, 2, -1, 0}, {0, -1, 2, -1}, {0, 0, -1, 2}}, func() []float64 {
			v := make([]float64, 4)
			for k := 1; k <= 4; k++ {
				v[4-k] = 2 - 2*math.Cos(float64(k)*math.Pi/5)
			}
			return v
		}()},
		// Rank one: u·uᵀ with |u|² = 14.
		{"rank one", [][]float64{{1, 2, 3}, {2, 4, 6}, {3, 6, 9}}, []float64{14, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := MatrixFromRows(tc.rows)
			if err != nil {
				t.Fatal(err)
			}
			values, vectors, err := SymmetricEigen(m)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tc.values {
				if math.Abs(values[i]-want) > 1e-12 {
					t.Errorf("eigenvalue %d: %.15g, want %.15g", i, values[i], want)
				}
			}
			checkDecomposition(t, m, values, vectors, 1e-12)
		})
	}
}

// checkDecomposition checks V orthogonal, A·v_k = λ_k v_k and V·diag(λ)·Vᵀ = A.
func checkDecomposition(t *testing.T, a *Matrix, values []float64, vectors *Matrix, tol float64) {
	t.Helper()
	n := a.N
	scale := max(1, maxAbsDiff(a, NewMatrix(n)))
	if d := maxAbsDiff(vectors.Transpose().Mul(vectors), IdentityMatrix(n)); d > tol*float64(n) {
		t.Errorf("VᵀV differs from I by %g", d)
	}
	av := a.Mul(vectors)
	for k := range n {
		for i := range n {
			if d := math.Abs(av.At(i, k) - values[k]*vectors.At(i, k)); d > tol*scale*float64(n) {
				t.Fatalf("A·v_%d differs from λv at row %d by %g", k, i, d)
			}
		}
	}
	if d := maxAbsDiff(reconstruct(values, vectors, func(x float64) float64 { return x }), a); d > tol*scale*float64(n) {
		t.Errorf("V·diag(λ)·Vᵀ differs from A by %g", d)
	}
	for k := 1; k < n; k++ {
		if values[k] > values[k-1] {
			t.Errorf("eigenvalues not sorted: %v", values)
			break
		}
	}
}

func TestSymmetricEigenRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{2, 5, 17, 64, 128} {
		a := randomSymmetric(rng, n)
		values, vectors, err := SymmetricEigen(a)
		if err != nil {
			t.Fatal(err)
		}
		checkDecomposition(t, a, values, vectors, 1e-13)
		// The trace is the sum of the eigenvalues.
		sum := 0.0
		for _, v := range values {
			sum += v
		}
		if math.Abs(sum-a.Trace()) > 1e-10 {
			t.Errorf("n=%d: sum of eigenvalues %g, trace %g", n, sum, a.Trace())
		}
	}
}

func TestSymmetricEigenErrors(t *testing.T) {
	m, _ := MatrixFromRows([][]float64{{1, math.NaN()}, {math.NaN(), 1}})
	if _, _, err := SymmetricEigen(m); err == nil {
		t.Error("NaN matrix accepted")
	}
	if _, err := MatrixFromRows([][]float64{{1, 2}, {3}}); err == nil {
		t.Error("ragged rows accepted")
	}
	if errors.Is(nil, ErrNoConvergence) {
		t.Error("unreachable")
	}
}

func TestSqrtPSD(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ n, rank int }{{1, 1}, {6, 6}, {40, 40}, {40, 10}, {128, 128}} {
		a := randomSPD(rng, tc.n, tc.rank, 0)
		s, err := SqrtPSD(a)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(s.Mul(s), a); d > 1e-10 {
			t.Errorf("n=%d rank=%d: S·S differs from A by %g", tc.n, tc.rank, d)
		}
		if d := maxAbsDiff(s, s.Transpose()); d > 1e-14 {
			t.Errorf("n=%d: square root not symmetric (%g)", tc.n, d)
		}
		// The square root is PSD.
		values, _, err := SymmetricEigen(s)
		if err != nil {
			t.Fatal(err)
		}
		if values[len(values)-1] < -1e-7 {
			t.Errorf("n=%d rank=%d: square root has eigenvalue %g", tc.n, tc.rank, values[len(values)-1])
		}
	}
	// Known: sqrt of diag(4, 9, 0) is diag(2, 3, 0).
	m, _ := MatrixFromRows([][]float64{{4, 0, 0}, {0, 9, 0}, {0, 0, 0}})
	s, err := SqrtPSD(m)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := MatrixFromRows([][]float64{{2, 0, 0}, {0, 3, 0}, {0, 0, 0}})
	if d := maxAbsDiff(s, want); d > 1e-15 {
		t.Errorf("sqrt(diag(4, 9, 0)) off by %g", d)
	}
}

func BenchmarkSymmetricEigen128(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	a := randomSPD(rng, 128, 128, 0)
	for b.Loop() {
		if _, _, err := SymmetricEigen(a); err != nil {
			b.Fatal(err)
		}
	}
}
