// Package diffusion implements denoising diffusion models on top of GoMLX: noise schedules,
// forward noising q(x_t | x_0), the training step (the network predicts ε, v or x_0, optionally
// class-conditional with label dropout), and samplers (DDPM, DDIM, DPM-Solver++) that turn noise
// into images with any Denoiser, with classifier-free guidance and inpainting; DDIMInversion runs
// DDIM backwards from images to noise, and Slerp interpolates between noises.
//
// # Index convention
//
// Timesteps are integers t = 0, 1, ..., T-1, used identically by training, the time embedding
// and every sampler. Index t is step t+1 of the DDPM paper:
//
//	Betas[t]     = β_{t+1}
//	AlphaBars[t] = ᾱ_{t+1} = Π_{s=0..t} (1 - Betas[s])
//	x_t          = sqrt(AlphaBars[t]) x_0 + sqrt(1 - AlphaBars[t]) ε
//
// so t = 0 already holds one step of noise (the model is trained there too), and the clean
// image corresponds to "t = -1", where ᾱ = 1. Samplers start at t = T-1 and their last update
// goes from t = 0 to the clean image, adding no noise.
//
// # Checkpoint files
//
// SaveCheckpoint writes one file, atomically: the 8 bytes "GODIFFCK", a uint32 format version (1),
// a uint64 header length, a JSON header {"meta": the caller's metadata, "variables": [{"path",
// "dtype", "dims", "trainable", "bytes"}...]} listing every variable of the store that has a value
// (sorted by path: the model's weights under /model, their moving averages under /ema, Adam's state
// under /AdamOptimizer, /global_step, the random state), the variables' raw values in header order,
// and a CRC-32 (IEEE) of everything before it. Integers and values are little-endian.
//
// GoMLX's own checkpoints (package github.com/gomlx/gomlx/ml/model/checkpoint, which the
// gomlx_checkpoints tool reads) are a folder of checkpoint-*.json and .bin pairs, without trainable
// flags or metadata beyond the store's parameters: checkpoint.Load does not read these files. To
// convert, load one with LoadCheckpoint into a new model.Store (then UseEMAWeights to export the
// moving-average weights as the model's), optionally keep the metadata as a store parameter
// (Store.SetParam), and save with checkpoint.Build(store).Dir(folder).Done() and Handler.Save;
// TestCheckpointToGoMLX does this. GoMLX creates the variables it loads trainable.
package diffusion

import (
	"fmt"
	"math"
)

// Schedule holds a variance schedule β_t and every table derived from it, computed once in float64.
// Build one with LinearSchedule, ScaledLinearSchedule, CosineSchedule or NewSchedule.
// See the package documentation for the index convention.
type Schedule struct {
	// Name describes the schedule, e.g. "linear(T=200, 0.0001..0.02)".
	Name string
	// T is the number of diffusion steps; valid timesteps are 0..T-1.
	T int

	Betas            []float64 // β_t.
	Alphas           []float64 // α_t = 1 - β_t.
	AlphaBars        []float64 // ᾱ_t = Π_{s<=t} α_s.
	AlphaBarsPrev    []float64 // ᾱ_{t-1}, with ᾱ_{-1} = 1.
	SqrtAlphaBars    []float64 // sqrt(ᾱ_t): scale of x_0 in x_t.
	SqrtOneMinusABar []float64 // sqrt(1 - ᾱ_t): scale of the noise in x_t.

	// PosteriorVariance is β̃_t = β_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t), the variance of q(x_{t-1} | x_t, x_0).
	// It is 0 at t = 0.
	PosteriorVariance []float64
	// PosteriorMeanX0 and PosteriorMeanXt are the coefficients of the posterior mean
	// μ̃_t = PosteriorMeanX0[t] x_0 + PosteriorMeanXt[t] x_t.
	PosteriorMeanX0 []float64
	PosteriorMeanXt []float64
}

// Schedule kinds accepted by ScheduleByName.
const (
	ScheduleLinear       = "linear"
	ScheduleScaledLinear = "scaled-linear"
	ScheduleCosine       = "cosine"
)

// Tutorial defaults: T = 200 steps, β linear from 1e-4 to 0.02.
const (
	DefaultT        = 200
	DefaultBetaMin  = 1e-4
	DefaultBetaMax  = 0.02
	cosineOffset    = 0.008
	cosineMaxBeta   = 0.999
	scaledLinearRef = 1000.0
)

// NewSchedule derives every table from the given betas. Each beta must lie in (0, 1).
func NewSchedule(name string, betas []float64) (*Schedule, error) {
	if len(betas) < 1 {
		return nil, fmt.Errorf("schedule %q: needs at least one step", name)
	}
	T := len(betas)
	s := &Schedule{
		Name: name, T: T,
		Betas: append([]float64(nil), betas...),
	}
	alloc := func() []float64 { return make([]float64, T) }
	s.Alphas, s.AlphaBars, s.AlphaBarsPrev = alloc(), alloc(), alloc()
	s.SqrtAlphaBars, s.SqrtOneMinusABar = alloc(), alloc()
	s.PosteriorVariance, s.PosteriorMeanX0, s.PosteriorMeanXt = alloc(), alloc(), alloc()
	prev := 1.0
	for t, b := range betas {
		if !(b > 0 && b < 1) {
			return nil, fmt.Errorf("schedule %q: beta[%d] = %g, every beta must lie in (0, 1)", name, t, b)
		}
		a := 1 - b
		ab := prev * a
		s.Alphas[t] = a
		s.AlphaBars[t] = ab
		s.AlphaBarsPrev[t] = prev
		s.SqrtAlphaBars[t] = math.Sqrt(ab)
		s.SqrtOneMinusABar[t] = math.Sqrt(1 - ab)
		s.PosteriorVariance[t] = b * (1 - prev) / (1 - ab)
		s.PosteriorMeanX0[t] = b * math.Sqrt(prev) / (1 - ab)
		s.PosteriorMeanXt[t] = (1 - prev) * math.Sqrt(a) / (1 - ab)
		prev = ab
	}
	return s, nil
}

// LinearSchedule is the DDPM schedule: β linear from betaMin to betaMax over T steps.
// The tutorial uses LinearSchedule(200, 1e-4, 0.02).
func LinearSchedule(T int, betaMin, betaMax float64) (*Schedule, error) {
	if T < 1 {
		return nil, fmt.Errorf("linear schedule: T = %d, must be >= 1", T)
	}
	if !(betaMin > 0 && betaMax >= betaMin && betaMax < 1) {
		return nil, fmt.Errorf("linear schedule: betas %g..%g, need 0 < min <= max < 1", betaMin, betaMax)
	}
	betas := make([]float64, T)
	for t := range betas {
		frac := 0.0
		if T > 1 {
			frac = float64(t) / float64(T-1)
		}
		betas[t] = betaMin + frac*(betaMax-betaMin)
	}
	return NewSchedule(fmt.Sprintf("linear(T=%d, %g..%g)", T, betaMin, betaMax), betas)
}

// ScaledLinearSchedule is the linear schedule with both ends scaled by 1000/T (improved DDPM):
// with few steps, the terminal ᾱ then still reaches about zero, so x_{T-1} is pure noise
// as sampling assumes. For T = 200 the betas run from 5e-4 to 0.1.
func ScaledLinearSchedule(T int) (*Schedule, error) {
	if T < 1 {
		return nil, fmt.Errorf("scaled-linear schedule: T = %d, must be >= 1", T)
	}
	scale := scaledLinearRef / float64(T)
	if DefaultBetaMax*scale >= 1 {
		return nil, fmt.Errorf("scaled-linear schedule: T = %d is too small (beta_max %g >= 1)", T, DefaultBetaMax*scale)
	}
	s, err := LinearSchedule(T, DefaultBetaMin*scale, DefaultBetaMax*scale)
	if err == nil {
		s.Name = fmt.Sprintf("scaled-linear(T=%d, %g..%g)", T, DefaultBetaMin*scale, DefaultBetaMax*scale)
	}
	return s, err
}

// CosineSchedule is the schedule of Nichol & Dhariwal (2021): ᾱ(t) = f(t)/f(0) with
// f(t) = cos²((t/T + s)/(1 + s) · π/2), s = 0.008, and β_t = min(1 - ᾱ(t+1)/ᾱ(t), 0.999).
func CosineSchedule(T int) (*Schedule, error) {
	if T < 1 {
		return nil, fmt.Errorf("cosine schedule: T = %d, must be >= 1", T)
	}
	f := func(t int) float64 {
		c := math.Cos((float64(t)/float64(T) + cosineOffset) / (1 + cosineOffset) * math.Pi / 2)
		return c * c
	}
	betas := make([]float64, T)
	for t := range betas {
		betas[t] = math.Min(1-f(t+1)/f(t), cosineMaxBeta)
	}
	return NewSchedule(fmt.Sprintf("cosine(T=%d)", T), betas)
}

// ScheduleByName builds a schedule of T steps by kind: "linear" (the tutorial's 1e-4..0.02),
// "scaled-linear" or "cosine".
func ScheduleByName(kind string, T int) (*Schedule, error) {
	switch kind {
	case ScheduleLinear:
		return LinearSchedule(T, DefaultBetaMin, DefaultBetaMax)
	case ScheduleScaledLinear:
		return ScaledLinearSchedule(T)
	case ScheduleCosine:
		return CosineSchedule(T)
	}
	return nil, fmt.Errorf("unknown schedule %q: use %q, %q or %q",
		kind, ScheduleLinear, ScheduleScaledLinear, ScheduleCosine)
}

// CheckTimestep returns an error if t is not a valid timestep of the schedule.
func (s *Schedule) CheckTimestep(t int) error {
	if t < 0 || t >= s.T {
		return fmt.Errorf("timestep %d out of range [0, %d) for %s", t, s.T, s.Name)
	}
	return nil
}
