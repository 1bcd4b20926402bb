package diffusion

import (
	"fmt"
	"math"
	"slices"
)

// DefaultDDIMSteps is the tutorial's number of DDIM steps.
const DefaultDDIMSteps = 10

// DDIM is the sampler of Song et al. (2021) on a subsequence of S timesteps:
//
//	x_prev = sqrt(ᾱ_prev) x̂_0 + sqrt(1 - ᾱ_prev - σ²) ε + σ z,
//	σ = η sqrt((1 - ᾱ_prev)/(1 - ᾱ_t)) sqrt(1 - ᾱ_t/ᾱ_prev),
//
// where ᾱ is the cumulative product (the tutorial wrongly used the per-step α).
// η = 0 is deterministic; η = 1 matches DDPM's posterior noise. The S timesteps start at
// T-1 (see Spacing), and the last step goes to ᾱ_prev = 1, returning x̂_0.
type DDIM struct {
	Steps   int     // S, the number of denoiser calls; 0 means DefaultDDIMSteps.
	Eta     float64 // η in [0, 1].
	Clip    bool    // Clamp x̂_0 to [-1, 1].
	Spacing Spacing // Which S of the T timesteps; "" means DefaultSpacing.
}

// Spacing names a way of choosing S of a schedule's T timesteps, as diffusers'
// timestep_spacing does. Both start at T-1.
type Spacing string

const (
	// SpacingLinspace spreads the S steps evenly over [0, T-1], both ends included:
	// round(i·(T-1)/(S-1)), so the last denoiser call sees t = 0.
	SpacingLinspace Spacing = "linspace"
	// SpacingTrailing steps back by T/S from T-1: round(T - i·T/S) - 1, so the last call
	// sees t = T/S - 1 and its x̂_0 is the output.
	SpacingTrailing Spacing = "trailing"
	// DefaultSpacing is the spacing of DDIM{} (see the README's sampler measurements).
	DefaultSpacing = SpacingLinspace
)

// Spacings lists the accepted Spacing values.
var Spacings = []Spacing{SpacingLinspace, SpacingTrailing}

// ParseSpacing returns the Spacing named name ("" gives DefaultSpacing).
func ParseSpacing(name string) (Spacing, error) {
	if sp := Spacing(name).orDefault(); slices.Contains(Spacings, sp) {
		return sp, nil
	}
	return "", fmt.Errorf("DDIM spacing %q: use one of %v", name, Spacings)
}

// orDefault returns sp, or DefaultSpacing if sp is empty.
func (sp Spacing) orDefault() Spacing {
	if sp == "" {
		return DefaultSpacing
	}
	return sp
}

// DDIMTimesteps returns S of a T-step schedule's timesteps chosen by spacing ("" means
// DefaultSpacing), in decreasing order from T-1.
func DDIMTimesteps(T, S int, spacing Spacing) ([]int, error) {
	if S < 1 || S > T {
		return nil, fmt.Errorf("DDIM steps = %d: must lie in [1, %d] (the schedule's T)", S, T)
	}
	spacing, err := ParseSpacing(string(spacing))
	if err != nil {
		return nil, err
	}
	ts := make([]int, S)
	for i := range ts {
		if spacing == SpacingTrailing {
			ts[i] = int(math.Round(float64(T)-float64(i)*float64(T)/float64(S))) - 1
		} else if S > 1 {
			ts[i] = int(math.Round(float64(S-1-i) * float64(T-1) / float64(S-1)))
		} else {
			ts[i] = T - 1
		}
	}
	return ts, nil
}

// Plan implements Sampler.
func (d DDIM) Plan(s *Schedule) ([]Update, error) {
	if err := checkEta(d.Eta); err != nil {
		return nil, err
	}
	ts, err := DDIMTimesteps(s.T, stepsOrDefault(d.Steps), d.Spacing)
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
	return fmt.Sprintf("DDIM(steps=%d, eta=%g, clip=%v, spacing=%s)", stepsOrDefault(d.Steps), d.Eta, d.Clip, d.Spacing.orDefault())
}

// stepsOrDefault returns a sampler's number of steps S, or DefaultDDIMSteps if it is 0 (DDIM and
// DPMSolver).
func stepsOrDefault(steps int) int {
	if steps == 0 {
		return DefaultDDIMSteps
	}
	return steps
}
