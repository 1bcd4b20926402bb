package diffusion

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/backend"
)

// Update is one reverse step from timestep T to the previous sampler timestep, in a form every
// sampler here shares. With ε = ε_θ(x_t, t) and the clean-image estimate
//
//	x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t)      (optionally clipped to [-1, 1]),
//
// the update is
//
//	x_prev = X0 · x̂_0 + Xt · x_t + Eps · ε + Noise · z + X0Prev · x̂_0',   z ~ N(0, I),
//
// where x̂_0' is the previous step's x̂_0 (multistep samplers; zero at the first step).
// When x̂_0 is clipped, ε is recomputed from it so the two stay consistent.
type Update struct {
	T                          int     // Timestep fed to the denoiser.
	X0, Xt, Eps, Noise, X0Prev float64 // Coefficients of the update.
	SqrtABar, SqrtOneMAB       float64 // sqrt(ᾱ) and sqrt(1-ᾱ) of x_t's level, to form x̂_0.
	// DenoiserSqrtABar and DenoiserSqrtOneMAB, when DenoiserSqrtOneMAB > 0, are the level of
	// timestep T if it differs from x_t's (DDIMInversion): the denoiser's output is read as ε̂ at
	// that level, and x̂_0 = (x_t - sqrt(1-ᾱ) ε̂)/sqrt(ᾱ) at x_t's.
	DenoiserSqrtABar, DenoiserSqrtOneMAB float64
}

// Sampler plans the reverse process: the timesteps it visits and the update at each.
// Implementations are small (see DDPM, DDIM and DPMSolver): the denoiser, the compiled step and the
// random stream are shared by all of them.
type Sampler interface {
	// Plan returns the updates in execution order, from t = T-1 down to the clean image.
	Plan(s *Schedule) ([]Update, error)
	// ClipX0 tells whether x̂_0 is clipped to [-1, 1] at each step.
	ClipX0() bool
	// String describes the sampler and its settings.
	String() string
}

// SampleOptions configure Sample. N images are drawn in batches of BatchSize.
type SampleOptions struct {
	N         int   // Number of images.
	BatchSize int   // Images per denoiser call; default (0) = N.
	Seed      int64 // Seeds the starting noise and every step's noise: same seed, same images.
	// ChainEvery > 0 records the current images every ChainEvery steps (and always the first
	// and last) for an animation of the denoising chain.
	ChainEvery int
	// Parallel is the number of shards each batch is split into, run concurrently (each a denoiser
	// call of BatchSize/Parallel images); 0 means Parallelism(backend).
	Parallel int
	// OnStep, if set, is called after every step of a batch (for progress displays), from one
	// goroutine at a time.
	OnStep func(done, total int)
	// Context, if set, stops sampling with its error once it is done (e.g. on Ctrl-C).
	Context context.Context

	// Labels gives, for a class-conditional model (Generator.Classes = K > 0), each image's class in
	// [0, K); nil samples without labels.
	Labels []int
	// Guidance is the classifier-free guidance scale w (Ho & Salimans 2022) used with Labels: the
	// denoiser's output is uncond + w·(cond - uncond), both halves in one call on twice the images.
	// w = 1 is plain conditional sampling and w = 0 unconditional (one call of N images each); w > 1
	// trades diversity for images that look more like their class. The combination is affine, so it is
	// the same on ε, x̂₀ or v.
	Guidance float64
	// Init, if set ([N, H, W, C] float32), replaces the starting noise: the images the plan's first
	// step is applied to (noise found by DDIMInversion, or clean images to invert).
	Init *tensors.Tensor
	// Known and Mask ([N, H, W, C] float32 each), if set, inpaint (RePaint without resampling, Lugmayr
	// et al. 2022): after every step, where Mask is 1 the images are replaced by Known noised to the
	// step's level, q(x_t | Known), with fresh noise; the last step leaves Known there exactly. The
	// rest is drawn to fit. Mask values in between blend.
	Known, Mask *tensors.Tensor
}

// SampleResult holds the generated images and, when requested, the denoising chain.
type SampleResult struct {
	// Images is [N, H, W, C] float32 (nominally in [-1, 1]).
	Images *tensors.Tensor
	// Chain holds snapshots of all N images: Chain[0] is the starting noise, the last is Images.
	Chain []*tensors.Tensor
	// ChainSteps gives for each chain frame the timestep it was taken after (-1 means clean).
	ChainSteps []int
}

// Generator compiles a denoiser once and runs any Sampler with it.
type Generator struct {
	schedule *Schedule
	shape    [3]int // H, W, C
	exec     map[stepKey]*model.Exec
	backend  compute.Backend
	store    *model.Store
	denoise  Denoiser

	// Prediction is what the denoiser outputs (see TrainConfig.Prediction); "" is PredictEpsilon.
	// Set it before the first Sample.
	Prediction Prediction

	// Classes is the number of classes of a class-conditional denoiser (TrainConfig.Classes); 0 for
	// an unconditional one. Set it before the first Sample.
	Classes int

	// alwaysGuide makes every conditional sample take the guided path (tests).
	alwaysGuide bool

	// readyMu serialises the first execution of each (clip, batch size) graph, which compiles it
	// and may initialise the store's variables: concurrent shards must not do that twice at once.
	readyMu sync.Mutex
	ready   map[readyKey]bool

	// weights are the tensors that held the store's variables when the step graphs last ran (see
	// dropIfStale).
	weights map[*model.Variable]*tensors.Tensor
}

// stepKey tells the compiled step graphs apart: clipped x̂₀, guided (two halves), inpainting.
type stepKey struct{ clip, guided, inpaint, relevel bool }

type readyKey struct {
	stepKey
	n int
}

// NewGenerator prepares sampling of images shaped [H, W, C] with the denoiser whose variables are
// in store (under ModelScope), for schedule s.
func NewGenerator(backend compute.Backend, store *model.Store, s *Schedule, denoise Denoiser, height, width, channels int) *Generator {
	return &Generator{schedule: s, shape: [3]int{height, width, channels}, exec: map[stepKey]*model.Exec{},
		backend: backend, store: store, denoise: denoise, ready: map[readyKey]bool{}}
}

// Indices of the step graph's coefficient vector: the Update's, the guidance scale, and the level
// the step goes to (inpainting's noised known image).
const (
	coefX0 = iota
	coefXt
	coefEps
	coefNoise
	coefSqrtABar
	coefSqrtOneMAB
	coefX0Prev
	coefGuidance
	coefNextSqrtABar
	coefNextSqrtOneMAB
	coefDenoiserSqrtABar
	coefDenoiserSqrtOneMAB
	numCoefs
)

// coefficients returns the step graph's coefficient vector for update i of plan.
func coefficients(plan []Update, i int, guidance float64) []float32 {
	u := plan[i]
	nextA, nextB := 1.0, 0.0 // The level this step goes to: the next update's, or clean.
	if i+1 < len(plan) {
		nextA, nextB = plan[i+1].SqrtABar, plan[i+1].SqrtOneMAB
	}
	c := make([]float32, numCoefs)
	for k, v := range map[int]float64{coefX0: u.X0, coefXt: u.Xt, coefEps: u.Eps, coefNoise: u.Noise,
		coefSqrtABar: u.SqrtABar, coefSqrtOneMAB: u.SqrtOneMAB, coefX0Prev: u.X0Prev,
		coefGuidance: guidance, coefNextSqrtABar: nextA, coefNextSqrtOneMAB: nextB,
		coefDenoiserSqrtABar: u.DenoiserSqrtABar, coefDenoiserSqrtOneMAB: u.DenoiserSqrtOneMAB} {
		c[k] = float32(v)
	}
	return c
}

// stepExec returns the compiled update. Inputs: x_t, t (int32 scalar), the coefficients [numCoefs],
// z, the previous x̂_0, then the labels [n] for a class-conditional model, then Known, Mask and their
// noise when inpainting. Outputs: x_prev and this step's x̂_0.
func (gen *Generator) stepExec(key stepKey) (*model.Exec, error) {
	if e, ok := gen.exec[key]; ok {
		return e, nil
	}
	if _, err := ParsePrediction(string(gen.Prediction)); err != nil {
		return nil, err
	}
	e, err := model.NewExec(gen.backend, gen.store, func(scope *model.Scope, in []*Node) []*Node {
		x, t, coef, z, x0Prev, rest := in[0], in[1], in[2], in[3], in[4], in[5:]
		var labels *Node
		if gen.Classes > 0 {
			labels, rest = rest[0], rest[1:]
		}
		tb := BroadcastToDims(t, x.Shape().Dimensions[0])
		c := func(i int) *Node { return Reshape(Slice(coef, AxisElem(i))) } // Scalar.
		sqrtAB, sqrtOneMAB := c(coefSqrtABar), c(coefSqrtOneMAB)
		out := gen.guidedOutput(scope.In("model"), x, tb, labels, c(coefGuidance), key.guided)
		var x0, eps *Node
		if key.relevel {
			_, eps = gen.Prediction.Estimates(out, x, c(coefDenoiserSqrtABar), c(coefDenoiserSqrtOneMAB))
			x0 = Div(Sub(x, Mul(sqrtOneMAB, eps)), sqrtAB)
		} else {
			x0, eps = gen.Prediction.Estimates(out, x, sqrtAB, sqrtOneMAB)
		}
		if key.clip {
			x0 = ClipScalar(x0, -1, 1)
			eps = Div(Sub(x, Mul(sqrtAB, x0)), sqrtOneMAB)
		}
		next := Add(Mul(c(coefX0), x0), Mul(c(coefXt), x))
		next = Add(next, Mul(c(coefEps), eps))
		next = Add(next, Mul(c(coefNoise), z))
		next = Add(next, Mul(c(coefX0Prev), x0Prev))
		if key.inpaint {
			known, mask, zKnown := rest[0], rest[1], rest[2]
			noised := Add(Mul(c(coefNextSqrtABar), known), Mul(c(coefNextSqrtOneMAB), zKnown))
			next = Add(Mul(mask, noised), Mul(OneMinus(mask), next))
		}
		return []*Node{next, x0}
	})
	if err != nil {
		return nil, err
	}
	gen.exec[key] = e.WithName("sampler_step")
	return e, nil
}

// guidedOutput is the denoiser's output for x at timesteps t given labels (nil for an unconditional
// model), or with guided, uncond + w·(cond - uncond) from one call on [x; x] with [labels; no label].
func (gen *Generator) guidedOutput(scope *model.Scope, x, t, labels, w *Node, guided bool) *Node {
	if !guided {
		return gen.denoise(scope, x, t, labels)
	}
	n := x.Shape().Dimensions[0]
	none := BroadcastToDims(Const(x.Graph(), int32(gen.Classes)), n)
	both := gen.denoise(scope, Concatenate([]*Node{x, x}, 0), Concatenate([]*Node{t, t}, 0), Concatenate([]*Node{labels, none}, 0))
	cond, uncond := Slice(both, AxisRange(0, n)), Slice(both, AxisRange(n))
	return Add(uncond, Mul(w, Sub(cond, uncond)))
}

// conditioning checks the labels, guidance and inpainting options against the model and returns the
// label each image is denoised with (nil for an unconditional model) and whether guidance needs
// the two-halves graph.
func (gen *Generator) conditioning(opts SampleOptions) (labels []int32, guided bool, err error) {
	w := opts.Guidance
	if math.IsNaN(w) || math.IsInf(w, 0) {
		return nil, false, fmt.Errorf("guidance scale %g: must be a finite number", w)
	}
	if opts.Labels == nil && w != 0 {
		return nil, false, fmt.Errorf("guidance scale %g without labels: give each image a class (SampleOptions.Labels)", w)
	}
	if opts.Labels != nil && gen.Classes == 0 {
		return nil, false, fmt.Errorf("class labels asked of an unconditional model: train a class-conditional one (train --classes, TrainConfig.Classes)")
	}
	if opts.Labels != nil && len(opts.Labels) != opts.N {
		return nil, false, fmt.Errorf("%d labels for %d images", len(opts.Labels), opts.N)
	}
	h, w2, ch := gen.shape[0], gen.shape[1], gen.shape[2]
	for name, t := range map[string]*tensors.Tensor{"Init": opts.Init, "Known": opts.Known, "Mask": opts.Mask} {
		if t != nil && (t.DType() != dtypes.Float32 || !slices.Equal(t.Shape().Dimensions, []int{opts.N, h, w2, ch})) {
			return nil, false, fmt.Errorf("%s is %s: want float32 [%d, %d, %d, %d]", name, t.Shape(), opts.N, h, w2, ch)
		}
	}
	if (opts.Known == nil) != (opts.Mask == nil) {
		return nil, false, fmt.Errorf("inpainting needs both Known and Mask")
	}
	if gen.Classes == 0 {
		return nil, false, nil
	}
	guided = opts.Labels != nil && ((w != 0 && w != 1) || gen.alwaysGuide)
	labels = make([]int32, opts.N)
	for i := range labels {
		labels[i] = int32(gen.Classes) // No label: unconditional, or w = 0.
		if opts.Labels != nil && (w != 0 || guided) {
			labels[i] = int32(opts.Labels[i])
		}
	}
	if opts.Labels != nil {
		given := make([]int32, len(opts.Labels))
		for i, l := range opts.Labels {
			given[i] = int32(l)
		}
		if err := checkLabels(given, gen.Classes, false); err != nil {
			return nil, false, err
		}
	}
	return labels, guided, nil
}

// Sample draws opts.N images with sampler. The starting noise comes from one PCG stream seeded
// by opts.Seed, and each image's step noise from its own stream (seed, image index), all drawn on
// the host: the images depend on the seed only, not on the backend's random generator, the batch
// size or the parallelism (up to float rounding in the denoiser).
func (gen *Generator) Sample(sampler Sampler, opts SampleOptions) (*SampleResult, error) {
	if opts.N < 1 {
		return nil, fmt.Errorf("number of images %d: must be >= 1", opts.N)
	}
	bs := opts.BatchSize
	if bs <= 0 || bs > opts.N {
		bs = opts.N
	}
	parallel := opts.Parallel
	if parallel <= 0 {
		parallel = Parallelism(gen.backend)
	}
	plan, err := sampler.Plan(gen.schedule)
	if err != nil {
		return nil, err
	}
	labels, guided, err := gen.conditioning(opts)
	if err != nil {
		return nil, err
	}
	inpaint := opts.Known != nil
	gen.dropIfStale()
	defer gen.recordWeights()
	key := stepKey{clip: sampler.ClipX0(), guided: guided, inpaint: inpaint,
		relevel: slices.ContainsFunc(plan, func(u Update) bool { return u.DenoiserSqrtOneMAB > 0 })}
	exec, err := gen.stepExec(key)
	if err != nil {
		return nil, err
	}
	h, w, ch := gen.shape[0], gen.shape[1], gen.shape[2]
	per := h * w * ch
	var images, known, mask []float32
	if opts.Init != nil {
		if images, err = tensors.CopyFlatData[float32](opts.Init); err != nil {
			return nil, err
		}
	} else {
		// Starting noise for every image first, so the first images do not depend on the batch size.
		images = StartNoise(opts.Seed, opts.N*per)
	}
	if inpaint {
		if known, err = tensors.CopyFlatData[float32](opts.Known); err != nil {
			return nil, err
		}
		if mask, err = tensors.CopyFlatData[float32](opts.Mask); err != nil {
			return nil, err
		}
	}
	record := func(step int) bool {
		return opts.ChainEvery > 0 && (step%opts.ChainEvery == 0 || step == len(plan))
	}
	res := &SampleResult{}
	var chains [][]float32
	if opts.ChainEvery > 0 {
		chains = append(chains, append([]float32(nil), images...))
		res.ChainSteps = append(res.ChainSteps, plan[0].T)
		for i := 1; i <= len(plan); i++ {
			if record(i) {
				chains = append(chains, make([]float32, opts.N*per))
				if i < len(plan) {
					res.ChainSteps = append(res.ChainSteps, plan[i].T)
				} else {
					res.ChainSteps = append(res.ChainSteps, -1)
				}
			}
		}
	}

	// A batch's shards run the whole plan concurrently; a batch step counts as done (for OnStep)
	// once all its shards have made it.
	total := len(plan) * ((opts.N + bs - 1) / bs)
	var mu sync.Mutex
	done := 0
	var stepCounts []int
	shardStepDone := func(shards, step int) {
		mu.Lock()
		defer mu.Unlock()
		stepCounts[step]++
		if stepCounts[step] == shards {
			done++
			if opts.OnStep != nil {
				opts.OnStep(done, total)
			}
		}
	}
	var stop atomic.Bool // Set on the first error, so the other shards give up.
	runShard := func(first, n, shards int) error {
		noise := imageStreams(opts.Seed, stepNoiseStream, first, n)
		x := tensors.FromFlatDataAndDimensions(images[first*per:(first+n)*per], n, h, w, ch)
		x0Prev := tensors.FromFlatDataAndDimensions(make([]float32, n*per), n, h, w, ch)
		defer func() { x.FinalizeAll(); x0Prev.FinalizeAll() }()
		var extra []any // Labels, then Known, Mask and the known region's noise (a slot).
		if labels != nil {
			extra = append(extra, tensors.FromFlatDataAndDimensions(labels[first:first+n], n))
		}
		var zKnown []float32
		var knownNoise []*rand.Rand
		if inpaint {
			zKnown, knownNoise = make([]float32, n*per), imageStreams(opts.Seed, knownNoiseStream, first, n)
			extra = append(extra, tensors.FromFlatDataAndDimensions(known[first*per:(first+n)*per], n, h, w, ch),
				tensors.FromFlatDataAndDimensions(mask[first*per:(first+n)*per], n, h, w, ch), nil)
		}
		z := make([]float32, n*per)
		frame := 1
		for i, u := range plan {
			if stop.Load() {
				return nil
			}
			if opts.Context != nil && opts.Context.Err() != nil {
				return fmt.Errorf("sampling stopped at step %d of %d: %w", i, len(plan), opts.Context.Err())
			}
			coef := coefficients(plan, i, opts.Guidance)
			drawNormal(z, noise, per, u.Noise != 0)
			args := []any{x, int32(u.T), coef, tensors.FromFlatDataAndDimensions(z, n, h, w, ch), x0Prev}
			if inpaint {
				drawNormal(zKnown, knownNoise, per, coef[coefNextSqrtOneMAB] != 0)
				extra[len(extra)-1] = tensors.FromFlatDataAndDimensions(zKnown, n, h, w, ch)
			}
			outs, err := gen.run(exec, readyKey{key, n}, append(args, extra...)...)
			if err != nil {
				return fmt.Errorf("%s step %d (t=%d): %w", sampler, i, u.T, err)
			}
			x.FinalizeAll()
			x0Prev.FinalizeAll()
			x, x0Prev = outs[0], outs[1]
			if record(i + 1) {
				if err := copyInto(chains[frame][first*per:], x); err != nil {
					return err
				}
				frame++
			}
			shardStepDone(shards, i)
		}
		return copyInto(images[first*per:], x)
	}
	for start := 0; start < opts.N; start += bs {
		n := min(bs, opts.N-start)
		shards := min(parallel, n)
		stepCounts = make([]int, len(plan))
		errs := make([]error, shards)
		var wg sync.WaitGroup
		for k := range shards {
			first, last := shardBounds(k, n, shards)
			first, last = start+first, start+last
			wg.Add(1)
			go func() {
				defer wg.Done()
				if errs[k] = runShard(first, last-first, shards); errs[k] != nil {
					stop.Store(true)
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
	}
	res.Images = tensors.FromFlatDataAndDimensions(images, opts.N, h, w, ch)
	for _, c := range chains {
		res.Chain = append(res.Chain, tensors.FromFlatDataAndDimensions(c, opts.N, h, w, ch))
	}
	return res, nil
}

// dropIfStale discards the compiled step graphs when any variable of the store holds another
// tensor than when they last ran (training, UseEMAWeights, a loaded checkpoint). Backends that
// prefer constants (compute.Capabilities.PreferConstantsForVariables: the Go backend and ONNX
// Runtime) bake the weights into inference graphs, which would otherwise keep sampling the old ones.
func (gen *Generator) dropIfStale() {
	stale := false
	for v := range gen.store.IterVariables() {
		if t, ok := gen.weights[v]; v.HasValue() && (!ok || t != v.MustValue()) {
			stale = true
			break
		}
	}
	if !stale || len(gen.exec) == 0 {
		return
	}
	for _, e := range gen.exec {
		e.Finalize()
	}
	gen.exec = map[stepKey]*model.Exec{}
	gen.ready = map[readyKey]bool{}
}

// recordWeights remembers which tensor holds each variable, for dropIfStale. Holding them also keeps
// their addresses from being reused by new tensors.
func (gen *Generator) recordWeights() {
	gen.weights = map[*model.Variable]*tensors.Tensor{}
	for v := range gen.store.IterVariables() {
		if v.HasValue() {
			gen.weights[v] = v.MustValue()
		}
	}
}

// run executes the sampler step; the first execution for a key runs alone (see readyMu).
func (gen *Generator) run(exec *model.Exec, key readyKey, args ...any) ([]*tensors.Tensor, error) {
	gen.readyMu.Lock()
	if gen.ready[key] {
		gen.readyMu.Unlock()
		return exec.Exec(args...)
	}
	defer gen.readyMu.Unlock()
	outs, err := exec.Exec(args...)
	gen.ready[key] = err == nil
	return outs, err
}

// shardBounds returns the range [first, last) of shard k when n items are cut into shards
// contiguous shards whose sizes differ by at most one.
func shardBounds(k, n, shards int) (first, last int) { return k * n / shards, (k + 1) * n / shards }

// stepNoiseStream and knownNoiseStream offset the PCG stream numbers of the images' step noise and
// of inpainting's known-region noise (image i uses stream+i) away from the starting noise's stream.
const (
	stepNoiseStream  = 1 << 32
	knownNoiseStream = 2 << 32
)

// StartNoise returns the n values of starting noise that Sample draws for seed when
// SampleOptions.Init is not set: image i of N is values [i·H·W·C, (i+1)·H·W·C) of StartNoise(seed,
// N·H·W·C), whatever N.
func StartNoise(seed int64, n int) []float32 {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	z := make([]float32, n)
	for i := range z {
		z[i] = float32(rng.NormFloat64())
	}
	return z
}

// imageStreams returns the random streams of images first..first+n-1 for seed.
func imageStreams(seed int64, stream uint64, first, n int) []*rand.Rand {
	rs := make([]*rand.Rand, n)
	for i := range rs {
		rs[i] = rand.New(rand.NewPCG(uint64(seed), stream+uint64(first+i)))
	}
	return rs
}

// drawNormal fills z with per values of N(0, 1) from each image's stream, or zeros if !draw.
func drawNormal(z []float32, streams []*rand.Rand, per int, draw bool) {
	if !draw {
		clear(z)
		return
	}
	for k, r := range streams {
		for j := range per {
			z[k*per+j] = float32(r.NormFloat64())
		}
	}
}

// Parallelism returns how many shards of a batch to run at once on backend b (backend.Shards):
// one per core on engines that run an execution on about one core (the pure Go backend, ONNX
// Runtime with one thread), so that every core is busy; 1 on engines that use them all (XLA).
func Parallelism(b compute.Backend) int { return backend.Shards(b) }

func copyInto(dst []float32, t *tensors.Tensor) error {
	return tensors.ConstFlatData(t, func(flat []float32) { copy(dst, flat) })
}

// checkEta reports an eta outside [0, 1].
func checkEta(eta float64) error {
	if !(eta >= 0 && eta <= 1) || math.IsNaN(eta) {
		return fmt.Errorf("eta = %g: must lie in [0, 1] (0: deterministic DDIM, 1: DDPM-like noise)", eta)
	}
	return nil
}
