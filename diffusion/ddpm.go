package diffusion

import (
	"fmt"
	"math"
)

// DDPM variance choices for the reverse step's noise.
const (
	VarianceBeta      = "beta"      // σ²_t = β_t (the tutorial's choice; upper bound).
	VariancePosterior = "posterior" // σ²_t = β̃_t, the posterior variance (lower bound).
)

// DDPM is ancestral sampling (Ho et al. 2020): every timestep from T-1 down to 0,
// x_{t-1} = μ̃_t(x_t, x̂_0) + σ_t z, with the posterior mean μ̃_t. The last step (t = 0)
// adds no noise and yields the clean image.
type DDPM struct {
	// Variance is VarianceBeta (default when empty) or VariancePosterior.
	Variance string
	// Clip clamps the x_0 estimate to [-1, 1] at each step.
	Clip bool
}

// Plan implements Sampler.
func (d DDPM) Plan(s *Schedule) ([]Update, error) {
	variance := d.Variance
	if variance == "" {
		variance = VarianceBeta
	}
	if variance != VarianceBeta && variance != VariancePosterior {
		return nil, fmt.Errorf("DDPM variance %q: use %q or %q", d.Variance, VarianceBeta, VariancePosterior)
	}
	plan := make([]Update, 0, s.T)
	for t := s.T - 1; t >= 0; t-- {
		v := s.PosteriorVariance[t]
		if variance == VarianceBeta {
			v = s.Betas[t]
		}
		if t == 0 {
			v = 0
		}
		plan = append(plan, Update{T: t, X0: s.PosteriorMeanX0[t], Xt: s.PosteriorMeanXt[t], Noise: math.Sqrt(v),
			SqrtABar: s.SqrtAlphaBars[t], SqrtOneMAB: s.SqrtOneMinusABar[t]})
	}
	return plan, nil
}

// ClipX0 implements Sampler.
func (d DDPM) ClipX0() bool { return d.Clip }

// String implements Sampler.
func (d DDPM) String() string {
	v := d.Variance
	if v == "" {
		v = VarianceBeta
	}
	return fmt.Sprintf("DDPM(variance=%s, clip=%v)", v, d.Clip)
}
