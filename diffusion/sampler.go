package diffusion

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/gomlx/compute"
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
	SqrtABar, SqrtOneMAB       float64 // sqrt(ᾱ_t) and sqrt(1-ᾱ_t), to form x̂_0.
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
	exec     map[bool]*model.Exec
	backend  compute.Backend
	store    *model.Store
	denoise  Denoiser

	// Prediction is what the denoiser outputs (see TrainConfig.Prediction); "" is PredictEpsilon.
	// Set it before the first Sample.
	Prediction Prediction

	// readyMu serialises the first execution of each (clip, batch size) graph, which compiles it
	// and may initialise the store's variables: concurrent shards must not do that twice at once.
	readyMu sync.Mutex
	ready   map[readyKey]bool

	// weights are the tensors that held the store's variables when the step graphs last ran (see
	// dropIfStale).
	weights map[*model.Variable]*tensors.Tensor
}

type readyKey struct {
	clip bool
	n    int
}

// NewGenerator prepares sampling of images shaped [H, W, C] with the denoiser whose variables are
// in store (under ModelScope), for schedule s.
func NewGenerator(backend compute.Backend, store *model.Store, s *Schedule, denoise Denoiser, height, width, channels int) *Generator {
	return &Generator{schedule: s, shape: [3]int{height, width, channels}, exec: map[bool]*model.Exec{},
		backend: backend, store: store, denoise: denoise, ready: map[readyKey]bool{}}
}

// stepExec returns the compiled update: inputs x_t, t (int32 scalar), coefficients [7] (X0, Xt,
// Eps, Noise, SqrtABar, SqrtOneMAB, X0Prev), z and the previous x̂_0; outputs x_prev and this step's x̂_0.
func (gen *Generator) stepExec(clip bool) (*model.Exec, error) {
	if e, ok := gen.exec[clip]; ok {
		return e, nil
	}
	if _, err := ParsePrediction(string(gen.Prediction)); err != nil {
		return nil, err
	}
	e, err := model.NewExec(gen.backend, gen.store, func(scope *model.Scope, x, t, coef, z, x0Prev *Node) (*Node, *Node) {
		batch := x.Shape().Dimensions[0]
		tb := BroadcastToDims(t, batch)
		c := func(i int) *Node { return Reshape(Slice(coef, AxisElem(i))) } // Scalar.
		sqrtAB, sqrtOneMAB := c(4), c(5)
		x0, eps := gen.Prediction.Estimates(gen.denoise(scope.In("model"), x, tb), x, sqrtAB, sqrtOneMAB)
		if clip {
			x0 = ClipScalar(x0, -1, 1)
			eps = Div(Sub(x, Mul(sqrtAB, x0)), sqrtOneMAB)
		}
		out := Add(Mul(c(0), x0), Mul(c(1), x))
		out = Add(out, Mul(c(2), eps))
		out = Add(out, Mul(c(3), z))
		return Add(out, Mul(c(6), x0Prev)), x0
	})
	if err != nil {
		return nil, err
	}
	gen.exec[clip] = e.WithName("sampler_step")
	return e, nil
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
	gen.dropIfStale()
	defer gen.recordWeights()
	exec, err := gen.stepExec(sampler.ClipX0())
	if err != nil {
		return nil, err
	}
	h, w, ch := gen.shape[0], gen.shape[1], gen.shape[2]
	per := h * w * ch
	rng := rand.New(rand.NewPCG(uint64(opts.Seed), 0x9e3779b97f4a7c15))
	// Starting noise for every image first, so the first images do not depend on the batch size.
	images := make([]float32, opts.N*per)
	for i := range images {
		images[i] = float32(rng.NormFloat64())
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
		noise := make([]*rand.Rand, n)
		for i := range noise {
			noise[i] = rand.New(rand.NewPCG(uint64(opts.Seed), stepNoiseStream+uint64(first+i)))
		}
		x := tensors.FromFlatDataAndDimensions(images[first*per:(first+n)*per], n, h, w, ch)
		x0Prev := tensors.FromFlatDataAndDimensions(make([]float32, n*per), n, h, w, ch)
		defer func() { x.FinalizeAll(); x0Prev.FinalizeAll() }()
		z := make([]float32, n*per)
		frame := 1
		for i, u := range plan {
			if stop.Load() {
				return nil
			}
			if opts.Context != nil && opts.Context.Err() != nil {
				return fmt.Errorf("sampling stopped at step %d of %d: %w", i, len(plan), opts.Context.Err())
			}
			coef := []float32{float32(u.X0), float32(u.Xt), float32(u.Eps), float32(u.Noise),
				float32(u.SqrtABar), float32(u.SqrtOneMAB), float32(u.X0Prev)}
			if u.Noise == 0 {
				clear(z)
			} else {
				for k, r := range noise {
					for j := range per {
						z[k*per+j] = float32(r.NormFloat64())
					}
				}
			}
			outs, err := gen.run(exec, readyKey{sampler.ClipX0(), n}, x, int32(u.T), coef, tensors.FromFlatDataAndDimensions(z, n, h, w, ch), x0Prev)
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
	gen.exec = map[bool]*model.Exec{}
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

// stepNoiseStream offsets the PCG stream numbers of the images' step noise (image i uses
// stepNoiseStream+i) away from the starting noise's stream.
const stepNoiseStream = 1 << 32

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
