package diffusion

import (
	"fmt"
	"math"
)

// DefaultDDIMSteps is the tutorial's number of DDIM steps.
const DefaultDDIMSteps = 10

// DDIM is the sampler of Song et al. (2021) on a subsequence of S timesteps:
//
//	x_prev = sqrt(ᾱ_prev) x̂_0 + sqrt(1 - ᾱ_prev - σ²) ε + σ z,
//	σ = η sqrt((1 - ᾱ_prev)/(1 - ᾱ_t)) sqrt(1 - ᾱ_t/ᾱ_prev),
//
// where ᾱ is the cumulative product (the tutorial wrongly used the per-step α).
// η = 0 is deterministic; η = 1 matches DDPM's posterior noise. Timesteps use trailing
// spacing: they start at T-1, and the last step goes to ᾱ_prev = 1, returning x̂_0.
type DDIM struct {
	Steps int     // S, the number of denoiser calls; 0 means DefaultDDIMSteps.
	Eta   float64 // η in [0, 1].
	Clip  bool    // Clamp x̂_0 to [-1, 1].
}

// DDIMTimesteps returns the trailing-spaced subsequence of S timesteps of a T-step schedule,
// in decreasing order: round(T - i·T/S) - 1 for i = 0..S-1 (so it starts at T-1).
func DDIMTimesteps(T, S int) ([]int, error) {
	if S < 1 || S > T {
		return nil, fmt.Errorf("DDIM steps = %d: must lie in [1, %d] (the schedule's T)", S, T)
	}
	ts := make([]int, S)
	for i := range ts {
		ts[i] = int(math.Round(float64(T)-float64(i)*float64(T)/float64(S))) - 1
	}
	return ts, nil
}

// Plan implements Sampler.
func (d DDIM) Plan(s *Schedule) ([]Update, error) {
	if err := checkEta(d.Eta); err != nil {
		return nil, err
	}
	steps := d.Steps
	if steps == 0 {
		steps = DefaultDDIMSteps
	}
	ts, err := DDIMTimesteps(s.T, steps)
	if err != nil {
		return nil, err
	}
	plan := make([]Update, len(ts))
	for i, t := range ts {
		ab := s.AlphaBars[t]
		abPrev := 1.0
		if i+1 < len(ts) {
			abPrev = s.AlphaBars[ts[i+1]]
		}
		sigma := d.Eta * math.Sqrt((1-abPrev)/(1-ab)*(1-ab/abPrev))
		plan[i] = Update{T: t, X0: math.Sqrt(abPrev), Eps: math.Sqrt(math.Max(1-abPrev-sigma*sigma, 0)), Noise: sigma,
			SqrtABar: s.SqrtAlphaBars[t], SqrtOneMAB: s.SqrtOneMinusABar[t]}
	}
	return plan, nil
}

// ClipX0 implements Sampler.
func (d DDIM) ClipX0() bool { return d.Clip }

// String implements Sampler.
func (d DDIM) String() string {
	steps := d.Steps
	if steps == 0 {
		steps = DefaultDDIMSteps
	}
	return fmt.Sprintf("DDIM(steps=%d, eta=%g, clip=%v)", steps, d.Eta, d.Clip)
}
