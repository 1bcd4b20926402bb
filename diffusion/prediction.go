package diffusion

import (
	"fmt"
	"slices"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
)

// Prediction names what the denoiser is trained to output (diffusers' prediction_type). With
// a = √ᾱ_t and b = √(1 - ᾱ_t), x_t = a x₀ + b ε, and a² + b² = 1.
type Prediction string

const (
	// PredictEpsilon trains the denoiser to output the noise ε (the DDPM paper, the tutorial).
	// Recovering x̂₀ = (x_t - b ε̂) / a divides by a, which is about 0.0055 at the last step of the
	// scaled-linear schedule: early in training the x₀ estimates of the first sampling steps are
	// mostly amplified error.
	PredictEpsilon Prediction = "epsilon"

	// PredictV trains the denoiser to output the velocity v = a ε - b x₀ (Salimans & Ho 2022,
	// "Progressive Distillation"): x̂₀ = a x_t - b v̂ and ε̂ = b x_t + a v̂, both without division.
	// At high noise it predicts the image itself, so samples get clean backgrounds much earlier in
	// training.
	PredictV Prediction = "v"

	// PredictX0 trains the denoiser to output the clean image x₀ itself: x̂₀ is the output and
	// ε̂ = (x_t - a x̂₀) / b (b >= √β₁ > 0). Its plain loss weighs every step's x₀ error equally, where
	// ε weighs it by the SNR and v by SNR + 1: the high-noise steps that lay out the digit's shape count
	// most, which draws recognisable shapes earliest in training.
	PredictX0 Prediction = "x0"
)

// Predictions lists the valid Prediction values.
var Predictions = []Prediction{PredictEpsilon, PredictV, PredictX0}

// ParsePrediction returns the Prediction of a name ("epsilon", "v" or "x0"); "" is PredictEpsilon,
// the value of checkpoints written before the choice existed.
func ParsePrediction(name string) (Prediction, error) {
	p := Prediction(name)
	if p == "" {
		return PredictEpsilon, nil
	}
	if slices.Contains(Predictions, p) {
		return p, nil
	}
	return "", fmt.Errorf("unknown prediction %q: use one of %q", name, Predictions)
}

// orDefault returns p, or PredictEpsilon if p is empty.
func (p Prediction) orDefault() Prediction {
	if p == "" {
		return PredictEpsilon
	}
	return p
}

// Target returns what the denoiser should output for clean images x0 and noise eps, given the
// per-example coefficients a = √ᾱ_t and b = √(1 - ᾱ_t) (broadcastable to x0).
func (p Prediction) Target(x0, eps, a, b *Node) *Node {
	switch p.orDefault() {
	case PredictV:
		return Sub(Mul(a, eps), Mul(b, x0))
	case PredictX0:
		return x0
	}
	return eps
}

// Estimates converts the denoiser's output at x_t into the estimates of the clean image x̂₀ and
// of the noise ε̂, with a = √ᾱ_t and b = √(1 - ᾱ_t) as in Target.
func (p Prediction) Estimates(out, xt, a, b *Node) (x0, eps *Node) {
	switch p.orDefault() {
	case PredictV:
		return Sub(Mul(a, xt), Mul(b, out)), Add(Mul(b, xt), Mul(a, out))
	case PredictX0:
		return out, Div(Sub(xt, Mul(a, out)), b)
	}
	return Div(Sub(xt, Mul(b, out)), a), out
}
