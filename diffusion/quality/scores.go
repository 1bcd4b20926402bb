package quality

import (
	"fmt"
	"math"
	"strings"
)

// NumClasses is the number of MNIST digits.
const NumClasses = 10

// ConfidentThreshold is the maximum class probability from which a prediction counts as confident.
const ConfidentThreshold = 0.9

// Outputs are the classifier's outputs for N images.
type Outputs struct {
	N int
	// Probs holds the class probabilities, row-major [N, NumClasses].
	Probs []float32
	// Features holds the penultimate-layer activations, row-major [N, FeatureDim].
	Features []float32
}

// Predictions returns the predicted digit (arg max of the probabilities) of every image.
func (o *Outputs) Predictions() []int {
	pred := make([]int, o.N)
	for i := range o.N {
		p := o.Probs[i*NumClasses : (i+1)*NumClasses]
		best := 0
		for c := 1; c < NumClasses; c++ {
			if p[c] > p[best] {
				best = c
			}
		}
		pred[i] = best
	}
	return pred
}

// Scores summarise how much a set of images looks like MNIST digits to the classifier.
type Scores struct {
	// N is the number of images scored.
	N int
	// Confidence is the mean over images of the maximum class probability (1: every image is a clear digit).
	Confidence float64
	// Confident is the fraction of images whose maximum class probability is >= ConfidentThreshold.
	Confident float64
	// Histogram counts the predicted digits (arg max of the probabilities) of all images.
	Histogram [NumClasses]int
	// Classes is the number of digits predicted confidently (max probability >= ConfidentThreshold) for
	// at least one image: 10 when every digit is produced.
	Classes int
	// ClassifierScore is the "Inception score" computed with the MNIST classifier,
	// exp(E_x KL(p(y|x) ‖ p(y))), between 1 and 10: high when each image is a confident digit and all digits
	// are equally frequent (about 9.9 for real MNIST).
	ClassifierScore float64
	// FD is the Fréchet distance between Gaussian fits of the images' features and of the reference
	// (the MNIST test set), as FID but with the MNIST classifier's features: 0 for identical
	// distributions. NaN when no reference was given.
	FD float64
}

// ScoreOutputs computes the scores of classifier outputs; ref, when not nil, is the Gaussian of the
// reference features for the Fréchet distance (see Classifier.ReferenceGaussian).
func ScoreOutputs(o *Outputs, ref *Gaussian) (*Scores, error) {
	if o.N < 1 || len(o.Probs) != o.N*NumClasses {
		return nil, fmt.Errorf("quality: ScoreOutputs: %d probabilities for %d images", len(o.Probs), o.N)
	}
	s := &Scores{N: o.N, FD: math.NaN()}
	var marginal [NumClasses]float64
	var confidentClasses [NumClasses]bool
	for i := range o.N {
		p := o.Probs[i*NumClasses : (i+1)*NumClasses]
		best := 0
		for c := range NumClasses {
			v := float64(p[c])
			if math.IsNaN(v) {
				return nil, fmt.Errorf("quality: ScoreOutputs: probability of image %d is NaN", i)
			}
			marginal[c] += v
			if p[c] > p[best] {
				best = c
			}
		}
		s.Confidence += float64(p[best])
		if p[best] >= float32(ConfidentThreshold) { // in float32, so that a probability of float32(0.9) counts.
			s.Confident++
			confidentClasses[best] = true
		}
		s.Histogram[best]++
	}
	n := float64(o.N)
	s.Confidence /= n
	s.Confident /= n
	for _, ok := range confidentClasses {
		if ok {
			s.Classes++
		}
	}
	for c := range marginal {
		marginal[c] /= n
	}
	kl := 0.0
	for i := range o.N {
		for c, pc := range o.Probs[i*NumClasses : (i+1)*NumClasses] {
			if p := float64(pc); p > 0 && marginal[c] > 0 {
				kl += p * math.Log(p/marginal[c])
			}
		}
	}
	s.ClassifierScore = math.Exp(kl / n)
	if ref != nil {
		if o.N < 2 {
			return nil, fmt.Errorf("quality: ScoreOutputs: the Fréchet distance needs at least 2 images, got %d", o.N)
		}
		dim := ref.Dim()
		if len(o.Features) != o.N*dim {
			return nil, fmt.Errorf("quality: ScoreOutputs: %d feature values for %d images of dimension %d", len(o.Features), o.N, dim)
		}
		g, err := FitGaussian(o.Features, o.N, dim)
		if err != nil {
			return nil, err
		}
		if s.FD, err = FrechetDistance(g, ref); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// HistogramString formats the histogram as "0:12 1:9 ...".
func (s *Scores) HistogramString() string {
	parts := make([]string, NumClasses)
	for c, k := range s.Histogram {
		parts[c] = fmt.Sprintf("%d:%d", c, k)
	}
	return strings.Join(parts, " ")
}
