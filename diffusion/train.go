package diffusion

import (
	"fmt"
	"math"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style: graph ops read as math.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train/optimizer"
)

// Denoiser predicts the noise ε contained in x_t. x is [batch, H, W, C] float32 and t holds the
// [batch] int32 timesteps (see the package index convention). It returns a node shaped like x.
// Its variables live under scope.
type Denoiser func(scope *model.Scope, x, t *Node) *Node

// TableConst returns a schedule table (e.g. Schedule.SqrtAlphaBars) as a [T] float32 constant.
func TableConst(g *Graph, table []float64) *Node {
	values := make([]float32, len(table))
	for i, v := range table {
		values[i] = float32(v)
	}
	return Const(g, values)
}

// gatherPerExample picks table[t] for each example and shapes it [batch, 1, ..., 1] to broadcast over x.
func gatherPerExample(table []float64, t *Node, rank int) *Node {
	g := t.Graph()
	values := Gather(TableConst(g, table), InsertAxes(t, -1)) // [batch]
	dims := make([]int, rank)
	for i := range dims {
		dims[i] = 1
	}
	dims[0] = t.Shape().Dimensions[0]
	return Reshape(values, dims...)
}

// AddNoise is the forward process q(x_t | x_0) in closed form:
// x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε, with t given per example ([batch] int32).
func AddNoise(s *Schedule, x0, eps, t *Node) *Node {
	a := gatherPerExample(s.SqrtAlphaBars, t, x0.Rank())
	b := gatherPerExample(s.SqrtOneMinusABar, t, x0.Rank())
	return Add(Mul(a, x0), Mul(b, eps))
}

// EpsilonLoss is the simplified DDPM objective: the mean over all elements of
// (ε - ε_θ(x_t, t))², for given clean images x0, timesteps t and noise eps.
func EpsilonLoss(scope *model.Scope, s *Schedule, denoise Denoiser, x0, t, eps *Node) *Node {
	xt := AddNoise(s, x0, eps, t)
	pred := denoise(scope, xt, t)
	return ReduceAllMean(Square(Sub(eps, pred)))
}

// TrainConfig holds the optimisation settings of a Trainer. Zero values take the tutorial's defaults.
type TrainConfig struct {
	// LearningRate of Adam (β1 0.9, β2 0.999, ε 1e-8, as optax.adam). Default 1e-4.
	LearningRate float64
	// Seed fixes the weight initialisation and the in-graph random stream of timesteps and noise.
	Seed int64
}

// DefaultLearningRate is the tutorial's Adam learning rate.
const DefaultLearningRate = 1e-4

// Trainer runs compiled training steps: each call to Step draws timesteps and noise from the
// store's seeded random state inside the graph, runs the denoiser forward and backward and
// applies one Adam update, all in a single graph execution.
//
// The store holds everything needed to resume: weights, Adam moments, the global step and the
// random state; saving it with SaveCheckpoint and loading it back continues the same stream.
type Trainer struct {
	backend  compute.Backend
	store    *model.Store
	schedule *Schedule
	exec     *model.Exec
}

// NewTrainer prepares training of denoise under schedule s, with variables in store.
// If the store has no random state yet (a fresh model), it is seeded from cfg.Seed; a store
// loaded from a checkpoint keeps its own.
func NewTrainer(backend compute.Backend, store *model.Store, s *Schedule, denoise Denoiser, cfg TrainConfig) (*Trainer, error) {
	lr := cfg.LearningRate
	if lr == 0 {
		lr = DefaultLearningRate
	}
	if !(lr > 0) || math.IsInf(lr, 0) {
		return nil, fmt.Errorf("learning rate %g: must be a positive finite number", lr)
	}
	store.SetParam(model.ParamInitialSeed, cfg.Seed)
	if v := store.GetVariable(model.JoinPath("/", model.RNGStateVariableName)); v == nil || !v.HasValue() {
		if err := store.SetRNGStateFromSeed(cfg.Seed); err != nil {
			return nil, err
		}
	}
	opt := optimizer.Adam().LearningRate(lr).Betas(0.9, 0.999).Epsilon(1e-8).Done()
	tr := &Trainer{backend: backend, store: store, schedule: s}
	exec, err := model.NewExec(backend, store, func(scope *model.Scope, x0 *Node) *Node {
		g := x0.Graph()
		store.SetTraining(g, true)
		batch := x0.Shape().Dimensions[0]
		t := scope.RandomIntN(g, int32(s.T), shapes.Make(dtypes.Int32, batch))
		eps := scope.RandomNormal(g, x0.Shape())
		loss := EpsilonLoss(scope.In("model"), s, denoise, x0, t, eps)
		opt.UpdateGraph(scope, g, loss)
		return loss
	})
	if err != nil {
		return nil, err
	}
	tr.exec = exec.WithName("train_step")
	return tr, nil
}

// Step runs one training step on a batch of clean images x0 ([batch, H, W, C] float32 in [-1, 1])
// and returns the batch's mean loss. A NaN or infinite loss is returned as an error.
func (tr *Trainer) Step(x0 *tensors.Tensor) (float64, error) {
	outs, err := tr.exec.Exec(x0)
	if err != nil {
		return 0, err
	}
	loss := float64(outs[0].Value().(float32))
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, fmt.Errorf("training diverged: loss is %v at step %d (lower the learning rate, or resume from the last checkpoint)", loss, tr.GlobalStep())
	}
	return loss, nil
}

// GlobalStep is the number of training steps applied so far (kept in the store, so it survives checkpoints).
func (tr *Trainer) GlobalStep() int64 { return optimizer.GetGlobalStep(tr.store) }

// Store returns the variables being trained.
func (tr *Trainer) Store() *model.Store { return tr.store }

// ModelScope is the scope under which a Trainer (and the samplers) place the denoiser's variables.
func ModelScope(store *model.Store) *model.Scope { return store.RootScope().In("model") }
