package diffusion

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// classData is analytic class-conditional data: pixels of class l are independent N(means[l], vars[l]);
// the last entry is the "no label" model, here the Gaussian with the mixture's mean and variance.
type classData struct{ means, vars []float64 }

// twoClasses: class 0 ~ N(-0.5, 0.1), class 1 ~ N(0.5, 0.1), and without label N(0, 0.35), the
// moments of their even mixture.
var twoClasses = classData{means: []float64{-0.5, 0.5, 0}, vars: []float64{0.1, 0.1, 0.35}}

// epsCoefs returns A, B of the exact noise predictor of class l at t: ε̂ = A x_t + B, with
// A = sqrt(1-ᾱ)/(ᾱ v + 1 - ᾱ) and B = -A sqrt(ᾱ) μ.
func (d classData) epsCoefs(s *Schedule, t, l int) (A, B float64) {
	ab := s.AlphaBars[t]
	A = math.Sqrt(1-ab) / (ab*d.vars[l] + 1 - ab)
	return A, -A * math.Sqrt(ab) * d.means[l]
}

// denoiser is the exact noise predictor of each class, as a Denoiser with labels (nil: no label).
func (d classData) denoiser(s *Schedule) Denoiser {
	return func(_ *model.Scope, x, t, labels *Node) *Node {
		g := x.Graph()
		classes := len(d.means) - 1
		if labels == nil {
			labels = BroadcastToDims(Const(g, int32(classes)), x.Shape().Dimensions[0])
		}
		as, bs := make([]float64, s.T*(classes+1)), make([]float64, s.T*(classes+1))
		for tt := range s.T {
			for l := range classes + 1 {
				as[tt*(classes+1)+l], bs[tt*(classes+1)+l] = d.epsCoefs(s, tt, l)
			}
		}
		idx := Add(MulScalar(t, float64(classes+1)), labels)
		return Add(Mul(gatherPerExample(as, idx, x.Rank()), x), gatherPerExample(bs, idx, x.Rank()))
	}
}

// guidedMoments propagates the mean and variance of one pixel through DDIM (any eta) or DDPM (β
// variance) written from the papers, with the guided noise prediction ε̂ = (1-w) ε̂_none + w ε̂_label,
// affine in x_t for this data, from N(0, 1).
func (d classData) guidedMoments(s *Schedule, smp Sampler, label int, w float64) (mean, variance float64) {
	none := len(d.means) - 1
	coefs := func(t int) (A, B float64) {
		au, bu := d.epsCoefs(s, t, none)
		ac, bc := d.epsCoefs(s, t, label)
		return (1-w)*au + w*ac, (1-w)*bu + w*bc
	}
	mean, variance = 0, 1
	step := func(P, Q, sig2 float64) { mean, variance = P*mean+Q, P*P*variance+sig2 }
	switch smp := smp.(type) {
	case DDPM: // Ho et al. eq. 11.
		for t := s.T - 1; t >= 0; t-- {
			A, B := coefs(t)
			k := s.Betas[t] / math.Sqrt(1-s.AlphaBars[t]) / math.Sqrt(s.Alphas[t])
			sig2 := s.Betas[t]
			if t == 0 {
				sig2 = 0
			}
			step(1/math.Sqrt(s.Alphas[t])-k*A, -k*B, sig2)
		}
	case DDIM: // Song et al. eq. 12.
		ts, _ := DDIMTimesteps(s.T, smp.Steps, smp.Spacing)
		for i, t := range ts {
			A, B := coefs(t)
			ab, abPrev := s.AlphaBars[t], 1.0
			if i+1 < len(ts) {
				abPrev = s.AlphaBars[ts[i+1]]
			}
			sig2 := smp.Eta * smp.Eta * (1 - abPrev) / (1 - ab) * (1 - ab/abPrev)
			c0, ce := math.Sqrt(abPrev/ab), math.Sqrt(1-abPrev-sig2)
			b := math.Sqrt(1 - ab)
			step(c0*(1-b*A)+ce*A, -c0*b*B+ce*B, sig2)
		}
	default:
		panic(fmt.Sprintf("guidedMoments: no reference for %s", smp))
	}
	return mean, variance
}

func pixels(t *testing.T, images *tensors.Tensor) []float32 {
	t.Helper()
	v, err := tensors.CopyFlatData[float32](images)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// moments returns the mean and the unbiased variance of v.
func moments(v []float32) (mean, variance float64) {
	for _, x := range v {
		mean += float64(x)
	}
	mean /= float64(len(v))
	for _, x := range v {
		variance += (float64(x) - mean) * (float64(x) - mean)
	}
	return mean, variance / float64(len(v)-1)
}

func repeatLabel(label, n int) []int {
	ls := make([]int, n)
	for i := range ls {
		ls[i] = label
	}
	return ls
}

// TestGuidanceOnGaussianClasses samples with classifier-free guidance from the exact class-conditional
// and unconditional denoisers of Gaussian data: the pixels are then Gaussian with the mean and
// variance that the guided prediction implies through the sampler's steps (guidedMoments), checked
// at 4 standard errors; w = 1 must reproduce the conditional data, N(0.5, 0.1), closely.
func TestGuidanceOnGaussianClasses(t *testing.T) {
	const h, n, sigmas = 4, 2000, 4.0
	s, _ := ScheduleByName(ScheduleScaledLinear, 200)
	gen := NewGenerator(testBackend(), model.NewStore(), s, twoClasses.denoiser(s), h, h, 1)
	gen.Classes = 2
	for _, smp := range []Sampler{DDIM{Steps: 50}, DDIM{Steps: 10, Eta: 1}, DDPM{}} {
		for _, w := range []float64{0, 1, 3} {
			t.Run(fmt.Sprintf("%s/w=%g", smp, w), func(t *testing.T) {
				wantMean, wantVar := twoClasses.guidedMoments(s, smp, 1, w)
				res, err := gen.Sample(smp, SampleOptions{N: n, Seed: 3, Labels: repeatLabel(1, n), Guidance: w})
				if err != nil {
					t.Fatal(err)
				}
				mean, variance := moments(pixels(t, res.Images))
				values := float64(n * h * h)
				t.Logf("mean %.4f (exact %.4f), variance %.4f (exact %.4f)", mean, wantMean, variance, wantVar)
				if tol := sigmas * math.Sqrt(wantVar/values); math.Abs(mean-wantMean) > tol {
					t.Errorf("mean %.4f, exact %.4f: more than %.4f apart", mean, wantMean, tol)
				}
				if tol := sigmas * math.Sqrt(2/(values-1)) * wantVar; math.Abs(variance-wantVar) > tol {
					t.Errorf("variance %.4f, exact %.4f: more than %.4f apart", variance, wantVar, tol)
				}
				if _, fine := smp.(DDPM); fine && w == 1 && (math.Abs(wantMean-0.5) > 0.02 || math.Abs(wantVar-0.1) > 0.01) {
					t.Errorf("w = 1: exact moments %.4f, %.4f stray from the class's 0.5, 0.1", wantMean, wantVar)
				}
			})
		}
	}
	// Guidance pushes away from the unconditional mean: w = 3 lands beyond the class mean.
	if m, _ := twoClasses.guidedMoments(s, DDPM{}, 1, 3); m <= 0.5 {
		t.Errorf("w = 3: exact mean %.4f, want beyond the class mean 0.5", m)
	}
}

// TestGuidedPathEndpoints runs the two-halves guided graph at w = 1 and w = 0: it must give the
// images of plain conditional and unconditional sampling (one call each), from the same seed.
func TestGuidedPathEndpoints(t *testing.T) {
	s, _ := ScheduleByName(ScheduleScaledLinear, 40)
	sample := func(guide bool, smp Sampler, labels []int, w float64) []float32 {
		gen := NewGenerator(testBackend(), model.NewStore(), s, twoClasses.denoiser(s), 4, 4, 1)
		gen.Classes, gen.alwaysGuide = 2, guide
		res, err := gen.Sample(smp, SampleOptions{N: 6, Seed: 11, Labels: labels, Guidance: w})
		if err != nil {
			t.Fatal(err)
		}
		return pixels(t, res.Images)
	}
	labels := []int{0, 1, 0, 1, 1, 0}
	for _, smp := range []Sampler{DDIM{Steps: 8}, DDPM{}, DPMSolver{Steps: 8}} {
		for _, tc := range []struct {
			w    float64
			want []float32
		}{
			{1, sample(false, smp, labels, 1)},
			{0, sample(false, smp, nil, 0)},
		} {
			got := sample(true, smp, labels, tc.w)
			for i := range got {
				if math.Abs(float64(got[i]-tc.want[i])) > 1e-5 {
					t.Fatalf("%s, guided graph at w = %g: value %d = %g, plain sampling %g", smp, tc.w, i, got[i], tc.want[i])
				}
			}
		}
		if a, b := sample(false, smp, labels, 1), sample(false, smp, labels, 2); a[0] == b[0] {
			t.Errorf("%s: w = 2 gave the images of w = 1", smp)
		}
	}
}

func TestConditioningErrors(t *testing.T) {
	s, _ := ScheduleByName(ScheduleLinear, 20)
	uncond := NewGenerator(testBackend(), model.NewStore(), s, gaussianDenoiser(s, 0.3), 4, 4, 1)
	cond := NewGenerator(testBackend(), model.NewStore(), s, twoClasses.denoiser(s), 4, 4, 1)
	cond.Classes = 2
	img := tensors.FromShape(shapes.Make(dtypes.Float32, 2, 4, 4, 1))
	wrong := tensors.FromShape(shapes.Make(dtypes.Float32, 2, 3, 4, 1))
	for _, tc := range []struct {
		gen  *Generator
		opts SampleOptions
		want string
	}{
		{uncond, SampleOptions{N: 2, Labels: []int{1, 1}, Guidance: 2}, "unconditional model"},
		{cond, SampleOptions{N: 2, Labels: []int{1, 2}, Guidance: 2}, "outside [0, 2)"},
		{cond, SampleOptions{N: 2, Labels: []int{-1, 0}}, "outside [0, 2)"},
		{cond, SampleOptions{N: 2, Labels: []int{1}}, "1 labels for 2 images"},
		{cond, SampleOptions{N: 2, Guidance: 3}, "without labels"},
		{cond, SampleOptions{N: 2, Labels: []int{1, 1}, Guidance: math.NaN()}, "finite"},
		{cond, SampleOptions{N: 2, Init: wrong}, "Init is"},
		{cond, SampleOptions{N: 2, Known: img}, "both Known and Mask"},
		{cond, SampleOptions{N: 2, Known: img, Mask: wrong}, "Mask is"},
	} {
		if _, err := tc.gen.Sample(DDIM{Steps: 4}, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", tc.opts, err, tc.want)
		}
	}
}

// TestDDIMInversionRoundTrip inverts Gaussian data with the exact denoiser and maps the noise back
// with DDIM: the reconstruction error must shrink as the steps get finer, the inverted noise must
// be about N(0, 1) from 20 steps on, for a denoiser that predicts ε and one that predicts x₀.
func TestDDIMInversionRoundTrip(t *testing.T) {
	const s2, n, h = 0.25, 64, 4
	s, _ := ScheduleByName(ScheduleScaledLinear, 200)
	data := gaussianBatch(rand.New(rand.NewPCG(5, 6)), n, h, s2)
	x := pixels(t, data)
	for _, pred := range []Prediction{PredictEpsilon, PredictX0} {
		eps := gaussianDenoiser(s, s2)
		denoise := func(scope *model.Scope, x, tt, _ *Node) *Node {
			a := gatherPerExample(s.SqrtAlphaBars, tt, x.Rank())
			b := gatherPerExample(s.SqrtOneMinusABar, tt, x.Rank())
			e := eps(scope, x, tt, nil)
			return pred.Target(Div(Sub(x, Mul(b, e)), a), e, a, b)
		}
		gen := NewGenerator(testBackend(), model.NewStore(), s, denoise, h, h, 1)
		gen.Prediction = pred
		prev := math.Inf(1)
		for _, steps := range []int{5, 20, 100} {
			noise, err := gen.Sample(DDIMInversion{Steps: steps}, SampleOptions{N: n, Init: data})
			if err != nil {
				t.Fatal(err)
			}
			back, err := gen.Sample(DDIM{Steps: steps}, SampleOptions{N: n, Init: noise.Images})
			if err != nil {
				t.Fatal(err)
			}
			z, y := pixels(t, noise.Images), pixels(t, back.Images)
			var se, sx float64
			for i := range x {
				se += float64((y[i] - x[i]) * (y[i] - x[i]))
				sx += float64(x[i] * x[i])
			}
			rel := math.Sqrt(se / sx)
			_, zVar := moments(z)
			t.Logf("%s, %d steps: relative error %.2e, noise variance %.3f", pred, steps, rel, zVar)
			if rel >= prev {
				t.Errorf("%s, %d steps: relative error %.2e, not below the coarser %.2e", pred, steps, rel, prev)
			}
			if steps >= 20 && math.Abs(zVar-1) > 0.1 {
				t.Errorf("%s, %d steps: inverted noise has variance %.3f, want about 1", pred, steps, zVar)
			}
			prev = rel
		}
		if prev > 0.04 {
			t.Errorf("%s: relative error %.2e at 100 steps, want < 4%%", pred, prev)
		}
	}
}

// TestInpaintingKeepsKnownPixels inpaints the lower half of Gaussian images: the known pixels must
// come back exactly, and the others, which this elementwise denoiser keeps independent of them, must
// be the pixels of plain sampling from the same seed.
func TestInpaintingKeepsKnownPixels(t *testing.T) {
	const s2, n, h = 0.25, 8, 4
	s, _ := ScheduleByName(ScheduleScaledLinear, 200)
	gen := NewGenerator(testBackend(), model.NewStore(), s, gaussianDenoiser(s, s2), h, h, 1)
	known := gaussianBatch(rand.New(rand.NewPCG(8, 9)), n, h, s2)
	kv := pixels(t, known)
	m := make([]float32, n*h*h)
	for i := range m {
		if (i/h)%h >= h/2 { // Lower half rows.
			m[i] = 1
		}
	}
	mask := tensors.FromFlatDataAndDimensions(m, n, h, h, 1)
	for _, smp := range []Sampler{DDPM{}, DDIM{Steps: 20, Eta: 0.5}, DPMSolver{Steps: 20}} {
		res, err := gen.Sample(smp, SampleOptions{N: n, Seed: 4, Known: known, Mask: mask})
		if err != nil {
			t.Fatal(err)
		}
		plain, err := gen.Sample(smp, SampleOptions{N: n, Seed: 4})
		if err != nil {
			t.Fatal(err)
		}
		got, free := pixels(t, res.Images), pixels(t, plain.Images)
		changed := 0
		for i := range got {
			want := free[i]
			if m[i] == 1 {
				want = kv[i]
			}
			if math.Abs(float64(got[i]-want)) > 1e-6 {
				t.Fatalf("%s: pixel %d (known: %v) = %g, want %g", smp, i, m[i] == 1, got[i], want)
			}
			if m[i] == 1 && got[i] != free[i] {
				changed++
			}
		}
		if changed == 0 {
			t.Errorf("%s: inpainting changed no known pixel", smp)
		}
	}
}

func TestSlerp(t *testing.T) {
	a, b := []float32{3, 0, 0}, []float32{0, 3, 0}
	for _, alpha := range []float64{0, 0.25, 0.5, 1} {
		got, err := Slerp(a, b, alpha)
		if err != nil {
			t.Fatal(err)
		}
		// Orthogonal vectors of norm 3: the result is 3 (cos(απ/2), sin(απ/2), 0).
		want := []float64{3 * math.Cos(alpha*math.Pi/2), 3 * math.Sin(alpha*math.Pi/2), 0}
		for i := range got {
			if math.Abs(float64(got[i])-want[i]) > 1e-6 {
				t.Errorf("slerp(α=%g) = %v, want %v", alpha, got, want)
				break
			}
		}
	}
	if got, _ := Slerp([]float32{1, 2}, []float32{2, 4}, 0.5); math.Abs(float64(got[0])-1.5) > 1e-6 {
		t.Errorf("slerp of parallel vectors = %v, want the midpoint (1.5, 3)", got)
	}
	if _, err := Slerp([]float32{1}, []float32{1, 2}, 0.5); err == nil {
		t.Error("slerp of different lengths: no error")
	}
}

// TestLabelDropout draws the training labels of a large batch: each is replaced by "no label" with
// the configured probability (within 4 binomial standard errors), and the others are kept.
func TestLabelDropout(t *testing.T) {
	const n, classes = 20000, 10
	s, _ := ScheduleByName(ScheduleLinear, 10)
	given := make([]int32, n)
	for i := range given {
		given[i] = int32(i % classes)
	}
	for _, p := range []float64{0, 0.1, 0.5} {
		store := model.NewStore()
		if err := store.SetRNGStateFromSeed(4); err != nil {
			t.Fatal(err)
		}
		cfg := TrainConfig{Classes: classes, LabelDropout: p}
		exec := model.MustNewExec(testBackend(), store, func(scope *model.Scope, x0, labels *Node) *Node {
			_, _, dropped := drawNoise(scope, s, x0, []*Node{labels}, cfg)
			return dropped
		})
		out := exec.MustExec(tensors.FromShape(shapes.Make(dtypes.Float32, n, 1, 1, 1)), given)[0]
		got := tensors.MustCopyFlatData[int32](out)
		none := 0
		for i, l := range got {
			if l == classes {
				none++
			} else if l != given[i] {
				t.Fatalf("p=%g: label %d became %d", p, given[i], l)
			}
		}
		rate := float64(none) / n
		if tol := 4 * math.Sqrt(p*(1-p)/n); math.Abs(rate-p) > tol {
			t.Errorf("p=%g: %.4f of the labels dropped, want within %.4f", p, rate, tol)
		}
	}
}
