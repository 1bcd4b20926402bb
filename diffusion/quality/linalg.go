package quality

import (
	"errors"
	"fmt"
	"math"
)

// Matrix is a dense square matrix of float64 in row-major order: element (i, j) is Data[i*N+j].
type Matrix struct {
	N    int
	Data []float64
}

// NewMatrix returns an n x n zero matrix.
func NewMatrix(n int) *Matrix { return &Matrix{N: n, Data: make([]float64, n*n)} }

// IdentityMatrix returns the n x n identity matrix.
func IdentityMatrix(n int) *Matrix {
	m := NewMatrix(n)
	for i := range n {
		m.Data[i*n+i] = 1
	}
	return m
}

// MatrixFromRows builds a matrix from its rows, which must all have len(rows) elements.
func MatrixFromRows(rows [][]float64) (*Matrix, error) {
	n := len(rows)
	m := NewMatrix(n)
	for i, r := range rows {
		if len(r) != n {
			return nil, fmt.Errorf("row %d has %d elements, want %d (square matrix)", i, len(r), n)
		}
		copy(m.Data[i*n:], r)
	}
	return m, nil
}

// At returns element (i, j).
func (m *Matrix) At(i, j int) float64 { return m.Data[i*m.N+j] }

// Set sets element (i, j).
func (m *Matrix) Set(i, j int, v float64) { m.Data[i*m.N+j] = v }

// Clone returns a copy of m.
func (m *Matrix) Clone() *Matrix {
	return &Matrix{N: m.N, Data: append([]float64(nil), m.Data...)}
}

// Trace returns the sum of the diagonal.
func (m *Matrix) Trace() float64 {
	t := 0.0
	for i := range m.N {
		t += m.Data[i*m.N+i]
	}
	return t
}

// Transpose returns mᵀ.
func (m *Matrix) Transpose() *Matrix {
	n := m.N
	t := NewMatrix(n)
	for i := range n {
		for j := range n {
			t.Data[j*n+i] = m.Data[i*n+j]
		}
	}
	return t
}

// Mul returns the product m·b.
func (m *Matrix) Mul(b *Matrix) *Matrix {
	if m.N != b.N {
		panic(fmt.Sprintf("quality.Matrix.Mul: sizes %d and %d differ", m.N, b.N))
	}
	n := m.N
	c := NewMatrix(n)
	for i := range n {
		row := c.Data[i*n : (i+1)*n]
		for k := range n {
			a := m.Data[i*n+k]
			if a == 0 {
				continue
			}
			brow := b.Data[k*n : (k+1)*n]
			for j := range n {
				row[j] += a * brow[j]
			}
		}
	}
	return c
}

// Symmetrize replaces m with (m + mᵀ)/2, removing round-off asymmetry.
func (m *Matrix) Symmetrize() {
	n := m.N
	for i := range n {
		for j := i + 1; j < n; j++ {
			v := 0.5 * (m.Data[i*n+j] + m.Data[j*n+i])
			m.Data[i*n+j], m.Data[j*n+i] = v, v
		}
	}
}

// frobeniusSquared returns the sum of the squares of all elements, and of the off-diagonal ones.
func (m *Matrix) frobeniusSquared() (all, off float64) {
	n := m.N
	for i := range n {
		for j := range n {
			v := m.Data[i*n+j] * m.Data[i*n+j]
			all += v
			if i != j {
				off += v
			}
		}
	}
	return all, off
}

// ErrNoConvergence is returned by SymmetricEigen when the Jacobi sweeps do not converge.
var ErrNoConvergence = errors.New("quality: symmetric eigen-decomposition did not converge")

// maxJacobiSweeps bounds the Jacobi iteration; cyclic Jacobi converges quadratically, so well-scaled
// matrices of a few hundred rows need fewer than 15 sweeps.
const maxJacobiSweeps = 100

// SymmetricEigen computes the eigen-decomposition a = V·diag(values)·Vᵀ of a symmetric matrix with the
// cyclic Jacobi method. values are sorted in decreasing order and column k of vectors (vectors.At(i, k)) is
// the unit eigenvector of values[k]. Only symmetry up to round-off is assumed: the matrix is symmetrized
// first. a is not modified. Cost: about 10 sweeps of O(n³) each, well under a second for n = 128.
func SymmetricEigen(a *Matrix) (values []float64, vectors *Matrix, err error) {
	n := a.N
	for _, v := range a.Data {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, nil, fmt.Errorf("quality: SymmetricEigen: matrix has a non-finite element (%v)", v)
		}
	}
	w := a.Clone()
	w.Symmetrize()
	v := IdentityMatrix(n)
	d := w.Data
	all, off := w.frobeniusSquared()
	converged := false
	for sweep := 0; sweep < maxJacobiSweeps; sweep++ {
		// Converged when the off-diagonal mass is negligible relative to the whole matrix.
		if off <= 1e-28*all || off == 0 {
			converged = true
			break
		}
		for p := 0; p < n-1; p++ {
			for q := p + 1; q < n; q++ {
				apq := d[p*n+q]
				if apq == 0 {
					continue
				}
				app, aqq := d[p*n+p], d[q*n+q]
				// Skip elements that are below round-off relative to both diagonal elements.
				if math.Abs(apq) < 1e-300 || (sweep > 3 && math.Abs(apq)*1e18 < math.Abs(app) && math.Abs(apq)*1e18 < math.Abs(aqq)) {
					d[p*n+q], d[q*n+p] = 0, 0
					continue
				}
				// Rotation J (J_pp = J_qq = c, J_pq = s, J_qp = -s) that zeroes a_pq in Jᵀ·A·J:
				// t = tan φ is the smaller root of t² + 2θt - 1 = 0, θ = (a_qq - a_pp) / (2 a_pq).
				theta := (aqq - app) / (2 * apq)
				var t float64
				if math.Abs(theta) > 1e150 {
					t = 0.5 / theta
				} else {
					t = 1 / (math.Abs(theta) + math.Sqrt(theta*theta+1))
					if theta < 0 {
						t = -t
					}
				}
				c := 1 / math.Sqrt(t*t+1)
				s := t * c
				// A·J: columns p and q.
				for k := range n {
					akp, akq := d[k*n+p], d[k*n+q]
					d[k*n+p] = c*akp - s*akq
					d[k*n+q] = s*akp + c*akq
				}
				// Jᵀ·(A·J): rows p and q.
				rp, rq := d[p*n:(p+1)*n], d[q*n:(q+1)*n]
				for k := range n {
					apk, aqk := rp[k], rq[k]
					rp[k] = c*apk - s*aqk
					rq[k] = s*apk + c*aqk
				}
				d[p*n+q], d[q*n+p] = 0, 0
				// V·J accumulates the eigenvectors.
				for k := range n {
					vkp, vkq := v.Data[k*n+p], v.Data[k*n+q]
					v.Data[k*n+p] = c*vkp - s*vkq
					v.Data[k*n+q] = s*vkp + c*vkq
				}
			}
		}
		all, off = w.frobeniusSquared()
	}
	if !converged {
		return nil, nil, fmt.Errorf("%w after %d sweeps (relative off-diagonal mass %.3g)", ErrNoConvergence, maxJacobiSweeps, off/all)
	}
	// Sort by decreasing eigenvalue.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	diag := make([]float64, n)
	for i := range n {
		diag[i] = d[i*n+i]
	}
	sortIndicesDesc(order, diag)
	values = make([]float64, n)
	vectors = NewMatrix(n)
	for k, src := range order {
		values[k] = diag[src]
		for i := range n {
			vectors.Data[i*n+k] = v.Data[i*n+src]
		}
	}
	return values, vectors, nil
}

// sortIndicesDesc sorts order so that keys[order[k]] decreases (insertion sort: n is small).
func sortIndicesDesc(order []int, keys []float64) {
	for i := 1; i < len(order); i++ {
		for j := i; j > 0 && keys[order[j]] > keys[order[j-1]]; j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
}

// SqrtPSD returns the symmetric positive semi-definite square root of a symmetric PSD matrix a
// (S·S = a), from its eigen-decomposition. Eigenvalues that round-off made slightly negative are
// treated as 0.
func SqrtPSD(a *Matrix) (*Matrix, error) {
	values, vectors, err := SymmetricEigen(a)
	if err != nil {
		return nil, err
	}
	return reconstruct(values, vectors, func(x float64) float64 { return math.Sqrt(max(x, 0)) }), nil
}

// reconstruct returns V·diag(f(values))·Vᵀ.
func reconstruct(values []float64, vectors *Matrix, f func(float64) float64) *Matrix {
	n := vectors.N
	out := NewMatrix(n)
	fv := make([]float64, n)
	for k, x := range values {
		fv[k] = f(x)
	}
	for i := range n {
		vi := vectors.Data[i*n : (i+1)*n]
		for j := i; j < n; j++ {
			vj := vectors.Data[j*n : (j+1)*n]
			s := 0.0
			for k := range n {
				s += vi[k] * fv[k] * vj[k]
			}
			out.Data[i*n+j], out.Data[j*n+i] = s, s
		}
	}
	return out
}
