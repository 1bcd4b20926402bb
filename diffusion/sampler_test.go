package diffusion

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/backend"
)

var testBackend = sync.OnceValue(func() compute.Backend {
	b, err := backend.New()
	if err != nil {
		panic(err)
	}
	return b
})

// gaussianDenoiser is the exact noise predictor for data x_0 ~ N(0, s2 I):
// E[ε | x_t] = sqrt(1 - ᾱ_t) x_t / (ᾱ_t s2 + 1 - ᾱ_t).
func gaussianDenoiser(s *Schedule, s2 float64) Denoiser {
	return func(_ *model.Scope, x, t, _ *Node) *Node {
		ab := gatherPerExample(s.AlphaBars, t, x.Rank())
		num := Sqrt(OneMinus(ab))
		den := Add(MulScalar(ab, s2), OneMinus(ab))
		return Mul(Div(num, den), x)
	}
}

// expectedVariance propagates the variance of x through the reverse process written directly from
// the papers (not from the samplers' Update tables): for Gaussian data every step is linear in x_t.
// Sampling starts from N(0, 1).
func expectedVariance(s *Schedule, s2 float64, sampler Sampler) float64 {
	k0 := func(t int) float64 { ab := s.AlphaBars[t]; return math.Sqrt(ab) * s2 / (ab*s2 + 1 - ab) }
	ke := func(t int) float64 { ab := s.AlphaBars[t]; return math.Sqrt(1-ab) / (ab*s2 + 1 - ab) }
	v := 1.0
	switch smp := sampler.(type) {
	case DDPM:
		for t := s.T - 1; t >= 0; t-- {
			// Ho et al. eq. 11: x_{t-1} = (x_t - β_t/sqrt(1-ᾱ_t) ε) / sqrt(α_t) + σ_t z.
			m := (1 - s.Betas[t]/math.Sqrt(1-s.AlphaBars[t])*ke(t)) / math.Sqrt(s.Alphas[t])
			sig2 := s.Betas[t]
			if smp.Variance == VariancePosterior {
				prev := 1.0
				if t > 0 {
					prev = s.AlphaBars[t-1]
				}
				sig2 = s.Betas[t] * (1 - prev) / (1 - s.AlphaBars[t])
			}
			if t == 0 {
				sig2 = 0
			}
			v = m*m*v + sig2
		}
	case DDIM:
		ts, _ := DDIMTimesteps(s.T, smp.Steps, smp.Spacing)
		for i, t := range ts {
			ab, abPrev := s.AlphaBars[t], 1.0
			if i+1 < len(ts) {
				abPrev = s.AlphaBars[ts[i+1]]
			}
			sig2 := smp.Eta * smp.Eta * (1 - abPrev) / (1 - ab) * (1 - ab/abPrev)
			m := math.Sqrt(abPrev)*k0(t) + math.Sqrt(1-abPrev-sig2)*ke(t)
			v = m*m*v + sig2
		}
	case DPMSolver:
		// Lu et al. (2022), DPM-Solver++(2M): x' = (σ'/σ) x - α'(e^{-h} - 1) D with the midpoint D.
		// For Gaussian data the whole chain is linear in the starting noise: x = m x_T.
		ts, _ := DDIMTimesteps(s.T, smp.Steps, smp.Spacing)
		lam := func(t int) float64 { return math.Log(math.Sqrt(s.AlphaBars[t]) / math.Sqrt(1-s.AlphaBars[t])) }
		m, mPrev := 1.0, 0.0 // x = m x_T, and the previous step's x̂_0 = mPrev x_T.
		for i, t := range ts {
			x0 := k0(t) * m
			if i+1 == len(ts) {
				m = x0
				break
			}
			next := ts[i+1]
			h := lam(next) - lam(t)
			D := x0
			if i > 0 {
				r := (lam(t) - lam(ts[i-1])) / h
				D = (1+1/(2*r))*x0 - mPrev/(2*r)
			}
			m = math.Sqrt((1-s.AlphaBars[next])/(1-s.AlphaBars[t]))*m - math.Sqrt(s.AlphaBars[next])*(math.Exp(-h)-1)*D
			mPrev = x0
		}
		v = m * m
	}
	return v
}

func sampleVariance(t *testing.T, res *SampleResult) (mean, variance float64) {
	t.Helper()
	values, err := tensors.CopyFlatData[float32](res.Images)
	if err != nil {
		t.Fatal(err)
	}
	return moments(values)
}

// TestSamplersOnGaussianData drives every sampler with the analytic optimal denoiser for Gaussian
// data x_0 ~ N(0, s2): the samples are then Gaussian, and their variance must match the exact
// variance of the sampler's own discretisation, derived independently in expectedVariance, within a
// tolerance that tells the sampler apart from each of its variants (the same sampler with another
// variance, eta, step count or spacing). The tolerance is varSigmas standard errors of the variance
// estimate (sqrt(2/(N-1)) relative, for N independent Gaussian values); the number of images is
// chosen per sampler so that the tolerances around its exact variance and around each variant's do
// not overlap: a sampler that ran a variant's process would fail.
//
// Fine samplers follow the reverse process closely and must also reproduce the data variance within
// 8%. Coarse DDIM (few steps) ends by returning the x_0 estimate E[x_0 | x_t] from a noisy t, which
// shrinks the variance: that is the method, not a bug.
func TestSamplersOnGaussianData(t *testing.T) {
	const s2 = 0.25
	const h = 4 // 16 independent values per image.
	const (
		varSigmas = 4     // The tolerance, in standard errors: a 6e-5 chance of failing by chance.
		minImages = 1000  // At least 16,000 values.
		maxImages = 40000 // Variants closer than ~1.4% would need more: change the variants.
		batch     = 1000
	)
	samplers := []struct {
		smp  Sampler
		fine bool
	}{
		{DDPM{}, true},
		{DDPM{Variance: VariancePosterior}, true},
		{DDIM{Steps: 10}, false},
		{DDIM{Steps: 10, Eta: 0.5}, false},
		{DDIM{Steps: 10, Eta: 1}, false},
		{DDIM{Steps: 10, Spacing: SpacingTrailing}, false},
		{DDIM{Steps: 10, Eta: 1, Spacing: SpacingTrailing}, false},
		{DDIM{Steps: 100}, true},
		{DDIM{Steps: 100, Eta: 1}, false},
		{DPMSolver{Steps: 10}, false},
		{DPMSolver{Steps: 10, Spacing: SpacingTrailing}, false},
		{DPMSolver{Steps: 200}, true},
	}
	for _, kind := range []string{ScheduleScaledLinear, ScheduleCosine} {
		s, err := ScheduleByName(kind, 200)
		if err != nil {
			t.Fatal(err)
		}
		exact := make([]float64, len(samplers))
		for i, tc := range samplers {
			exact[i] = expectedVariance(s, s2, tc.smp)
		}
		// The reference agrees with itself: DDIM with eta 1 on every step is DDPM with the posterior
		// variance (Song et al. 2021, section 4.1).
		if a, b := expectedVariance(s, s2, DDIM{Steps: s.T, Eta: 1}), expectedVariance(s, s2, DDPM{Variance: VariancePosterior}); math.Abs(a-b) > 1e-12 {
			t.Errorf("%s: exact variances of DDIM with eta 1 on all %d steps %.9f and of DDPM with the posterior variance %.9f differ", kind, s.T, a, b)
		}
		gen := NewGenerator(testBackend(), model.NewStore(), s, gaussianDenoiser(s, s2), h, h, 1)
		for i, tc := range samplers {
			smp, want := tc.smp, exact[i]
			// Values needed to tell smp from its nearest variant j: varSigmas·sqrt(2/(N-1))·(v_i + v_j)
			// <= |v_i - v_j|.
			values, nearest := 0.0, -1
			for j, other := range samplers {
				if j == i || fmt.Sprintf("%T", other.smp) != fmt.Sprintf("%T", smp) {
					continue
				}
				if need := 2*math.Pow(varSigmas*(want+exact[j])/math.Abs(want-exact[j]), 2) + 1; need > values {
					values, nearest = need, j
				}
			}
			if nearest < 0 {
				t.Fatalf("%s has no variant in the list", smp)
			}
			n := max(minImages, batch*int(math.Ceil(values/(h*h)/batch)))
			if n > maxImages {
				t.Fatalf("%s/%s: telling it from %s (exact variances %.5f and %.5f) needs %d images, more than %d",
					kind, smp, samplers[nearest].smp, want, exact[nearest], n, maxImages)
			}
			tol := varSigmas * math.Sqrt(2/float64(n*h*h-1)) * want
			t.Run(fmt.Sprintf("%s/%s", kind, smp), func(t *testing.T) {
				t.Logf("exact variance %.5f; nearest variant %s: %.5f (%+.2f%%); %d images: tolerance %.5f (%.2f%%)",
					want, samplers[nearest].smp, exact[nearest], 100*(exact[nearest]-want)/want, n, tol, 100*tol/want)
				res, err := gen.Sample(smp, SampleOptions{N: n, BatchSize: batch, Seed: 7})
				if err != nil {
					t.Fatal(err)
				}
				mean, variance := sampleVariance(t, res)
				t.Logf("variance %.5f (%+.2f%% from the exact), data %.4f; mean %.4f", variance, 100*(variance-want)/want, s2, mean)
				if limit := varSigmas * math.Sqrt(want/float64(n*h*h)); math.Abs(mean) > limit {
					t.Errorf("mean %.4f, want 0 within %.4f", mean, limit)
				}
				if math.Abs(variance-want) > tol {
					t.Errorf("variance %.5f differs from the exact %.5f by more than %.5f (%d standard errors)", variance, want, tol, varSigmas)
				}
				if tc.fine && math.Abs(variance-s2) > 0.08*s2 {
					t.Errorf("variance %.4f differs from the data's %.4f by more than 8%%", variance, s2)
				}
			})
		}
	}
}

func TestSamplerSeeds(t *testing.T) {
	s, _ := ScheduleByName(ScheduleScaledLinear, 50)
	gen := NewGenerator(testBackend(), model.NewStore(), s, gaussianDenoiser(s, 0.3), 4, 4, 1)
	get := func(smp Sampler, seed int64, bs int, parallel ...int) []float32 {
		opts := SampleOptions{N: 6, BatchSize: bs, Seed: seed}
		if len(parallel) > 0 {
			opts.Parallel = parallel[0]
		}
		res, err := gen.Sample(smp, opts)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := tensors.CopyFlatData[float32](res.Images)
		return v
	}
	equal := func(a, b []float32) bool {
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}
	for _, smp := range []Sampler{DDIM{Steps: 5}, DDIM{Steps: 5, Eta: 1}, DDPM{}} {
		a, b, c := get(smp, 1, 6), get(smp, 1, 6), get(smp, 2, 6)
		if !equal(a, b) {
			t.Errorf("%s: same seed gave different images", smp)
		}
		if equal(a, c) {
			t.Errorf("%s: different seeds gave the same images", smp)
		}
	}
	// Each image has its own noise streams: neither the batch size nor the number of concurrent
	// shards changes the images (this denoiser is elementwise, so not even the rounding).
	for _, smp := range []Sampler{DDIM{Steps: 5}, DDIM{Steps: 5, Eta: 1}, DDPM{}} {
		a := get(smp, 3, 6, 1)
		for _, bp := range [][2]int{{4, 1}, {6, 2}, {6, 3}, {5, 2}, {1, 1}} {
			if b := get(smp, 3, bp[0], bp[1]); !equal(a, b) {
				t.Errorf("%s: batch %d in %d shards gives other images than batch 6 in 1", smp, bp[0], bp[1])
			}
		}
	}
}

func TestSamplerChainAndErrors(t *testing.T) {
	s, _ := ScheduleByName(ScheduleLinear, 200)
	gen := NewGenerator(testBackend(), model.NewStore(), s, gaussianDenoiser(s, 0.3), 4, 4, 1)
	res, err := gen.Sample(DDIM{Steps: 10}, SampleOptions{N: 3, Seed: 1, ChainEvery: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Chain) != 11 || len(res.ChainSteps) != 11 {
		t.Fatalf("chain has %d frames (%d steps), want 11", len(res.Chain), len(res.ChainSteps))
	}
	if res.ChainSteps[0] != 199 || res.ChainSteps[10] != -1 {
		t.Errorf("chain steps %v: want 199 first and -1 (clean) last", res.ChainSteps)
	}
	last, _ := tensors.CopyFlatData[float32](res.Chain[10])
	final, _ := tensors.CopyFlatData[float32](res.Images)
	for i := range last {
		if last[i] != final[i] {
			t.Fatal("last chain frame differs from the returned images")
		}
	}
	res, err = gen.Sample(DDPM{}, SampleOptions{N: 2, Seed: 1, ChainEvery: 25})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Chain) != 9 { // The start, then after steps 25, 50, ..., 200 (the last step is not repeated).
		t.Errorf("DDPM chain every 25 of 200 steps has %d frames, want 9", len(res.Chain))
	}
	for _, smp := range []Sampler{DDIM{Steps: 201}, DDIM{Steps: -2}, DDIM{Eta: 1.5}, DDIM{Eta: -0.1}, DDIM{Spacing: "leading"}, DDPM{Variance: "huge"},
		DPMSolver{Steps: 201}, DPMSolver{Spacing: "leading"}} {
		if _, err := gen.Sample(smp, SampleOptions{N: 1}); err == nil {
			t.Errorf("%s accepted", smp)
		}
	}
	if _, err := gen.Sample(DDIM{}, SampleOptions{N: 0}); err == nil {
		t.Error("N = 0 accepted")
	}
}

// TestSamplerProgressWithShards checks that OnStep counts every batch step once, in order, when
// batches run as concurrent shards, and that a cancelled context stops all shards with its error.
func TestSamplerProgressWithShards(t *testing.T) {
	s, _ := ScheduleByName(ScheduleLinear, 20)
	gen := NewGenerator(testBackend(), model.NewStore(), s, gaussianDenoiser(s, 0.3), 4, 4, 1)
	var seen []int
	_, err := gen.Sample(DDPM{}, SampleOptions{N: 7, BatchSize: 4, Parallel: 3, Seed: 1,
		OnStep: func(done, total int) {
			if total != 40 {
				t.Errorf("total %d, want 2 batches x 20 steps", total)
			}
			seen = append(seen, done)
		}})
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range seen {
		if d != i+1 {
			t.Fatalf("OnStep reported %v, want 1..40", seen)
		}
	}
	if len(seen) != 40 {
		t.Fatalf("OnStep called %d times, want 40", len(seen))
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err = gen.Sample(DDPM{}, SampleOptions{N: 8, BatchSize: 8, Parallel: 2, Seed: 1, Context: ctx,
		OnStep: func(done, total int) {
			if done == 3 {
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled sampling returned %v, want context.Canceled", err)
	}
}

// TestGeneratorSeesNewWeights changes a weight between two Sample calls of one Generator: the second
// call must use the new value, as a fresh Generator does, even on backends that bake weights into
// inference graphs as constants.
func TestGeneratorSeesNewWeights(t *testing.T) {
	s, _ := ScheduleByName(ScheduleCosine, 50)
	exact := gaussianDenoiser(s, 0.3)
	denoise := func(scope *model.Scope, x, tt, _ *Node) *Node {
		w := scope.VariableWithValue("w", float32(1)).NodeValue(x.Graph())
		return Mul(w, exact(scope, x, tt, nil))
	}
	sample := func(gen *Generator) []float32 {
		res, err := gen.Sample(DDIM{Steps: 5}, SampleOptions{N: 4, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		v, _ := tensors.CopyFlatData[float32](res.Images)
		return v
	}
	store := model.NewStore()
	gen := NewGenerator(testBackend(), store, s, denoise, 4, 4, 1)
	before := sample(gen)
	w := store.GetVariable("/model/w")
	if w == nil {
		t.Fatal("the denoiser's variable /model/w was not created")
	}
	if err := w.SetValue(tensors.FromValue(float32(0.5))); err != nil {
		t.Fatal(err)
	}
	after := sample(gen)

	fresh := model.NewStore()
	fresh.VariableWithValue("/model/w", float32(0.5))
	want := sample(NewGenerator(testBackend(), fresh, s, denoise, 4, 4, 1))
	same, stale := true, true
	for i := range want {
		same = same && after[i] == want[i]
		stale = stale && after[i] == before[i]
	}
	if stale || !same {
		t.Errorf("after the weight changed the generator drew %v, want %v (a fresh generator's); before the change %v",
			after[:4], want[:4], before[:4])
	}
}
