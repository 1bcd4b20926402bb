package quality

import (
	"fmt"
	"math"
)

// Gaussian is a multivariate normal fitted to feature vectors: their mean and covariance.
type Gaussian struct {
	Mean []float64
	Cov  *Matrix
	// N is the number of vectors it was fitted to (0 for a Gaussian given in closed form).
	N int
}

// Dim returns the dimension of the Gaussian.
func (g *Gaussian) Dim() int { return len(g.Mean) }

// FitGaussian fits a Gaussian to n feature vectors of dimension dim, stored row-major in features
// (len n*dim): the sample mean and the unbiased sample covariance (divided by n-1), accumulated in
// float64. It needs n >= 2.
func FitGaussian(features []float32, n, dim int) (*Gaussian, error) {
	if dim < 1 {
		return nil, fmt.Errorf("quality: FitGaussian: dimension %d must be >= 1", dim)
	}
	if n < 2 {
		return nil, fmt.Errorf("quality: FitGaussian: need at least 2 vectors to estimate a covariance, got %d", n)
	}
	if len(features) != n*dim {
		return nil, fmt.Errorf("quality: FitGaussian: %d values for %d vectors of dimension %d", len(features), n, dim)
	}
	mean := make([]float64, dim)
	for i := range n {
		for j, v := range features[i*dim : (i+1)*dim] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	cov := NewMatrix(dim)
	centered := make([]float64, dim)
	for i := range n {
		for j, v := range features[i*dim : (i+1)*dim] {
			centered[j] = float64(v) - mean[j]
		}
		for j := range dim {
			cj := centered[j]
			if cj == 0 {
				continue
			}
			row := cov.Data[j*dim : (j+1)*dim]
			for k := j; k < dim; k++ { // upper triangle; mirrored below.
				row[k] += cj * centered[k]
			}
		}
	}
	scale := 1 / float64(n-1)
	for j := range dim {
		for k := j; k < dim; k++ {
			v := cov.Data[j*dim+k] * scale
			cov.Data[j*dim+k], cov.Data[k*dim+j] = v, v
		}
	}
	for _, v := range cov.Data {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("quality: FitGaussian: the features hold non-finite values")
		}
	}
	return &Gaussian{Mean: mean, Cov: cov, N: n}, nil
}

// FrechetDistance is the squared Fréchet (2-Wasserstein) distance between two Gaussians, the quantity
// behind FID:
//
//	FD = |μ1 - μ2|² + tr(Σ1) + tr(Σ2) - 2 tr((Σ1^½ Σ2 Σ1^½)^½)
//
// The matrix square roots are computed in float64 from symmetric eigen-decompositions
// (SymmetricEigen), with round-off negative eigenvalues clamped to 0, so singular covariances (e.g.
// features that are always 0) are fine. For 1-D Gaussians it is (μ1-μ2)² + (σ1-σ2)².
func FrechetDistance(a, b *Gaussian) (float64, error) {
	if a.Dim() != b.Dim() || a.Cov == nil || b.Cov == nil || a.Cov.N != a.Dim() || b.Cov.N != b.Dim() {
		return 0, fmt.Errorf("quality: FrechetDistance: Gaussians of different or inconsistent dimensions")
	}
	meanTerm := 0.0
	for i := range a.Mean {
		d := a.Mean[i] - b.Mean[i]
		meanTerm += d * d
	}
	sqrtA, err := SqrtPSD(a.Cov)
	if err != nil {
		return 0, err
	}
	m := sqrtA.Mul(b.Cov).Mul(sqrtA)
	m.Symmetrize()
	values, _, err := SymmetricEigen(m)
	if err != nil {
		return 0, err
	}
	traceSqrt := 0.0
	for _, v := range values {
		traceSqrt += math.Sqrt(max(v, 0))
	}
	fd := meanTerm + a.Cov.Trace() + b.Cov.Trace() - 2*traceSqrt
	if fd < 0 { // round-off for (nearly) identical Gaussians.
		fd = 0
	}
	return fd, nil
}
