package quality

import (
	"math"
	"math/rand/v2"
	"testing"
)

func gaussian(mean []float64, cov *Matrix) *Gaussian { return &Gaussian{Mean: mean, Cov: cov} }

func diagonal(values ...float64) *Matrix {
	m := NewMatrix(len(values))
	for i, v := range values {
		m.Set(i, i, v)
	}
	return m
}

func checkClose(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol*max(1, math.Abs(want)) {
		t.Errorf("%s = %.12g, want %.12g", what, got, want)
	}
}

func TestFrechetDistanceClosedForms(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))

	// Identical Gaussians: 0, also for a singular covariance.
	for _, cov := range []*Matrix{randomSPD(rng, 30, 30, 0.1), randomSPD(rng, 30, 5, 0)} {
		mean := make([]float64, 30)
		for i := range mean {
			mean[i] = rng.NormFloat64()
		}
		fd, err := FrechetDistance(gaussian(mean, cov), gaussian(mean, cov))
		if err != nil {
			t.Fatal(err)
		}
		checkClose(t, "FD of identical Gaussians", fd, 0, 1e-9)
	}

	// 1-D: (μ1-μ2)² + (σ1-σ2)².
	for _, tc := range []struct{ m1, s1, m2, s2 float64 }{{0, 1, 0, 1}, {1, 2, -1, 3}, {0.5, 0.1, 0.5, 4}, {3, 0, 1, 2}} {
		fd, err := FrechetDistance(gaussian([]float64{tc.m1}, diagonal(tc.s1*tc.s1)), gaussian([]float64{tc.m2}, diagonal(tc.s2*tc.s2)))
		if err != nil {
			t.Fatal(err)
		}
		checkClose(t, "1-D FD", fd, (tc.m1-tc.m2)*(tc.m1-tc.m2)+(tc.s1-tc.s2)*(tc.s1-tc.s2), 1e-12)
	}

	// Diagonal covariances: |μ1-μ2|² + Σ (sqrt(a_i) - sqrt(b_i))².
	a := []float64{1, 4, 0.25, 9, 0}
	b := []float64{4, 4, 1, 0.01, 2}
	m1 := []float64{0, 1, 2, 3, 4}
	m2 := []float64{1, 1, 0, 3, 5}
	want := 0.0
	for i := range a {
		want += (m1[i]-m2[i])*(m1[i]-m2[i]) + (math.Sqrt(a[i])-math.Sqrt(b[i]))*(math.Sqrt(a[i])-math.Sqrt(b[i]))
	}
	fd, err := FrechetDistance(gaussian(m1, diagonal(a...)), gaussian(m2, diagonal(b...)))
	if err != nil {
		t.Fatal(err)
	}
	checkClose(t, "diagonal FD", fd, want, 1e-12)

	// The same diagonal case in a rotated basis (the covariances still commute): FD is invariant.
	_, rot, err := SymmetricEigen(randomSymmetric(rng, 5)) // eigenvectors of a random matrix: a rotation
	if err != nil {
		t.Fatal(err)
	}
	rotate := func(m *Matrix) *Matrix { return rot.Mul(m).Mul(rot.Transpose()) }
	rotVec := func(v []float64) []float64 {
		out := make([]float64, len(v))
		for i := range v {
			for j := range v {
				out[i] += rot.At(i, j) * v[j]
			}
		}
		return out
	}
	fd, err = FrechetDistance(gaussian(rotVec(m1), rotate(diagonal(a...))), gaussian(rotVec(m2), rotate(diagonal(b...))))
	if err != nil {
		t.Fatal(err)
	}
	// a has a zero eigenvalue: round-off of order 1e-16 in the rotated matrix becomes 1e-8 in its
	// square root, hence the looser tolerance.
	checkClose(t, "rotated diagonal FD", fd, want, 1e-7)

	// 2-D, non-commuting covariances: for 2x2 matrices tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)), and the
	// eigenvalues of Σ1^½ Σ2 Σ1^½ are those of Σ1·Σ2.
	for range 20 {
		s1, s2 := randomSPD(rng, 2, 2, 0.01), randomSPD(rng, 2, 2, 0.01)
		p := s1.Mul(s2)
		det := s1.At(0, 0)*s1.At(1, 1) - s1.At(0, 1)*s1.At(1, 0)
		det *= s2.At(0, 0)*s2.At(1, 1) - s2.At(0, 1)*s2.At(1, 0)
		want := s1.Trace() + s2.Trace() - 2*math.Sqrt(p.Trace()+2*math.Sqrt(det))
		fd, err := FrechetDistance(gaussian([]float64{0, 0}, s1), gaussian([]float64{0, 0}, s2))
		if err != nil {
			t.Fatal(err)
		}
		checkClose(t, "2-D FD", fd, want, 1e-10)
		// Symmetric in its arguments.
		fd2, err := FrechetDistance(gaussian([]float64{0, 0}, s2), gaussian([]float64{0, 0}, s1))
		if err != nil {
			t.Fatal(err)
		}
		checkClose(t, "2-D FD swapped", fd2, want, 1e-10)
	}

	// Scaling: Σ2 = c²·Σ1 gives (1-c)² tr Σ1.
	s := randomSPD(rng, 50, 50, 0.1)
	s2 := s.Clone()
	for i := range s2.Data {
		s2.Data[i] *= 9
	}
	fd, err = FrechetDistance(gaussian(make([]float64, 50), s), gaussian(make([]float64, 50), s2))
	if err != nil {
		t.Fatal(err)
	}
	checkClose(t, "scaled FD", fd, 4*s.Trace(), 1e-9)

	if _, err := FrechetDistance(gaussian([]float64{0}, diagonal(1)), gaussian([]float64{0, 0}, diagonal(1, 1))); err == nil {
		t.Error("different dimensions accepted")
	}
}

func TestFitGaussian(t *testing.T) {
	// Known sample: x = (1, 2), (3, 2), (5, 8): mean (3, 4), cov [[4, 6], [6, 12]].
	g, err := FitGaussian([]float32{1, 2, 3, 2, 5, 8}, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := MatrixFromRows([][]float64{{4, 6}, {6, 12}})
	if g.Mean[0] != 3 || g.Mean[1] != 4 || maxAbsDiff(g.Cov, want) > 1e-12 || g.N != 3 {
		t.Errorf("FitGaussian: mean %v, cov %v, N %d", g.Mean, g.Cov.Data, g.N)
	}
	for _, tc := range []struct {
		data   []float32
		n, dim int
	}{{[]float32{1, 2}, 1, 2}, {[]float32{1, 2, 3}, 2, 2}, {nil, 2, 0}, {[]float32{1, float32(math.Inf(1))}, 2, 1}} {
		if _, err := FitGaussian(tc.data, tc.n, tc.dim); err == nil {
			t.Errorf("FitGaussian(%v, %d, %d) accepted", tc.data, tc.n, tc.dim)
		}
	}

	// Samples of a known Gaussian: the fitted distance to it shrinks with n, and the distance between two
	// samples of the same Gaussian is small relative to that of shifted samples.
	rng := rand.New(rand.NewPCG(9, 10))
	dim := 8
	sample := func(n int, shift float64) []float32 {
		out := make([]float32, n*dim)
		for i := range out {
			out[i] = float32(rng.NormFloat64()*(1+float64(i%dim)/4) + shift)
		}
		return out
	}
	truth := &Gaussian{Mean: make([]float64, dim), Cov: NewMatrix(dim)}
	for j := range dim {
		s := 1 + float64(j)/4
		truth.Cov.Set(j, j, s*s)
	}
	prev := math.Inf(1)
	for _, n := range []int{100, 1000, 10000} {
		g, err := FitGaussian(sample(n, 0), n, dim)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := FrechetDistance(g, truth)
		if err != nil {
			t.Fatal(err)
		}
		if fd >= prev {
			t.Errorf("FD to the true Gaussian %g at n=%d, not below %g", fd, n, prev)
		}
		prev = fd
	}
	if prev > 0.05 {
		t.Errorf("FD of 10000 samples to their Gaussian %g, want < 0.05", prev)
	}
	ga, _ := FitGaussian(sample(2000, 0), 2000, dim)
	gb, _ := FitGaussian(sample(2000, 1), 2000, dim)
	fd, _ := FrechetDistance(ga, gb)
	checkClose(t, "FD of samples shifted by 1 in every dimension", fd, float64(dim), 0.1)
}
