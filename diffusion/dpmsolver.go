package diffusion

import (
	"fmt"
	"math"
)

// DPMSolver is the second-order multistep DPM-Solver++ of Lu et al. (2022), "DPM-Solver++: Fast
// Solver for Guided Sampling of Diffusion Probabilistic Models" (diffusers'
// DPMSolverMultistepScheduler with algorithm_type "dpmsolver++", solver_type "midpoint" and
// lower_order_final). It integrates the probability-flow ODE in the clean-image form on the same S
// timesteps as DDIM. With α = √ᾱ, σ = √(1-ᾱ), λ = log(α/σ) and h = λ_prev - λ_t,
//
//	x_prev = (σ_prev/σ_t) x_t + α_prev (1 - e^{-h}) D,
//	D = (1 + 1/(2r)) x̂_0 - 1/(2r) x̂_0', r = h'/h,
//
// where x̂_0' and h' belong to the step before. The first step (no x̂_0' yet) and the last one
// (to ᾱ_prev = 1, which returns x̂_0) take D = x̂_0: that first-order update is DDIM with η = 0.
// The second-order term reuses the previous step's x̂_0, so the cost per step is DDIM's.
type DPMSolver struct {
	Steps   int     // S, the number of denoiser calls; 0 means DefaultDDIMSteps.
	Clip    bool    // Clamp x̂_0 to [-1, 1] (the clamped x̂_0 is also the next step's x̂_0').
	Spacing Spacing // Which S of the T timesteps; "" means DefaultSpacing.
}

// Plan implements Sampler.
func (d DPMSolver) Plan(s *Schedule) ([]Update, error) {
	ts, err := DDIMTimesteps(s.T, stepsOrDefault(d.Steps), d.Spacing)
	if err != nil {
		return nil, err
	}
	lambda := func(ab float64) float64 { return 0.5 * (math.Log(ab) - math.Log1p(-ab)) } // log(α/σ).
	plan := make([]Update, len(ts))
	for i, t := range ts {
		u := Update{T: t, SqrtABar: s.SqrtAlphaBars[t], SqrtOneMAB: s.SqrtOneMinusABar[t]}
		if i+1 == len(ts) { // To ᾱ_prev = 1: σ_prev = 0, h = ∞, x_prev = x̂_0.
			u.X0 = 1
			plan[i] = u
			continue
		}
		ab, abPrev := s.AlphaBars[t], s.AlphaBars[ts[i+1]]
		h := lambda(abPrev) - lambda(ab)
		u.Xt = math.Sqrt((1 - abPrev) / (1 - ab))
		step := -math.Sqrt(abPrev) * math.Expm1(-h) // α_prev (1 - e^{-h}).
		u.X0 = step
		if i > 0 {
			r := (lambda(ab) - lambda(s.AlphaBars[ts[i-1]])) / h
			u.X0 = step * (1 + 1/(2*r))
			u.X0Prev = -step / (2 * r)
		}
		plan[i] = u
	}
	return plan, nil
}

// ClipX0 implements Sampler.
func (d DPMSolver) ClipX0() bool { return d.Clip }

// String implements Sampler.
func (d DPMSolver) String() string {
	return fmt.Sprintf("DPM-Solver++(2M, steps=%d, clip=%v, spacing=%s)", stepsOrDefault(d.Steps), d.Clip, d.Spacing.orDefault())
}
