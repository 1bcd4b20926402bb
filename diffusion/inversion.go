package diffusion

import (
	"fmt"
	"math"
	"slices"
)

// DDIMInversion runs deterministic DDIM backwards (Song et al. 2021; Dhariwal & Nichol 2021, eq. 13):
// from clean images (SampleOptions.Init) up to the noise x_{T-1} that DDIM with the same Steps and
// Spacing maps back to about them. On DDIM's timesteps in increasing order t_0 < ... < t_{S-1}, from
// the clean image (ᾱ = 1) to t_0, then from each t_i to t_{i+1},
//
//	x_{t_{i+1}} = sqrt(ᾱ_{t_{i+1}}) x̂_0 + sqrt(1 - ᾱ_{t_{i+1}}) ε̂,   ε̂ = ε_θ(x_{t_i}, t_{i+1}),
//
// as diffusers' DDIMInverseScheduler: the denoiser is asked at the step's target timestep, which
// the DDIM step being undone used, but on its starting point, which is all there is; its output is
// read as a noise estimate at that timestep (see Update), whatever the Prediction. The round trip
// is therefore exact only as the steps get small: its error shrinks with Steps (TestDDIMInversionRoundTrip).
type DDIMInversion struct {
	Steps   int     // S, the number of denoiser calls (as DDIM's); 0 means DefaultDDIMSteps.
	Spacing Spacing // Which S of the T timesteps; "" means DefaultSpacing.
}

// Plan implements Sampler.
func (d DDIMInversion) Plan(s *Schedule) ([]Update, error) {
	ts, err := DDIMTimesteps(s.T, stepsOrDefault(d.Steps), d.Spacing)
	if err != nil {
		return nil, err
	}
	slices.Reverse(ts) // Increasing.
	plan := make([]Update, len(ts))
	for i, next := range ts {
		u := Update{T: next, SqrtABar: 1, X0: s.SqrtAlphaBars[next], Eps: s.SqrtOneMinusABar[next],
			DenoiserSqrtABar: s.SqrtAlphaBars[next], DenoiserSqrtOneMAB: s.SqrtOneMinusABar[next]}
		if i > 0 {
			u.SqrtABar, u.SqrtOneMAB = s.SqrtAlphaBars[ts[i-1]], s.SqrtOneMinusABar[ts[i-1]]
		}
		plan[i] = u
	}
	return plan, nil
}

// ClipX0 implements Sampler: inversion never clips.
func (d DDIMInversion) ClipX0() bool { return false }

// String implements Sampler.
func (d DDIMInversion) String() string {
	return fmt.Sprintf("DDIM inversion(steps=%d, spacing=%s)", stepsOrDefault(d.Steps), d.Spacing.orDefault())
}

// Slerp interpolates spherically between a and b (Shoemake 1985), as diffusion models interpolate
// their starting noise: with θ the angle between them,
//
//	slerp(a, b, α) = sin((1-α)θ)/sin θ · a + sin(αθ)/sin θ · b,
//
// which keeps the norm of Gaussian noise (about sqrt(n)) where a straight line would shrink it
// midway. Nearly parallel a and b (θ < 1e-6) fall back to the straight line.
func Slerp(a, b []float32, alpha float64) ([]float32, error) {
	if len(a) != len(b) {
		return nil, fmt.Errorf("slerp: %d values against %d", len(a), len(b))
	}
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	if na == 0 || nb == 0 {
		return nil, fmt.Errorf("slerp: a zero vector has no direction")
	}
	theta := math.Acos(max(-1, min(1, dot/math.Sqrt(na*nb))))
	ca, cb := 1-alpha, alpha
	if theta >= 1e-6 {
		ca, cb = math.Sin((1-alpha)*theta)/math.Sin(theta), math.Sin(alpha*theta)/math.Sin(theta)
	}
	out := make([]float32, len(a))
	for i := range a {
		out[i] = float32(ca*float64(a[i]) + cb*float64(b[i]))
	}
	return out, nil
}

// SlerpPath returns n points from a to b (both ends included) evenly spaced in angle by Slerp,
// concatenated: the starting noise of an interpolation strip of n images (SampleOptions.Init).
func SlerpPath(a, b []float32, n int) ([]float32, error) {
	if n < 2 {
		return nil, fmt.Errorf("slerp path: %d points, want >= 2", n)
	}
	path := make([]float32, 0, n*len(a))
	for i := range n {
		p, err := Slerp(a, b, float64(i)/float64(n-1))
		if err != nil {
			return nil, err
		}
		path = append(path, p...)
	}
	return path, nil
}
