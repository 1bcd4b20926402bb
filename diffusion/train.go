package diffusion

import (
	"fmt"
	"math"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style: graph ops read as math.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/initializer"
	"github.com/gomlx/gomlx/ml/train/optimizer"
)

// Denoiser predicts the noise ε contained in x_t (or what TrainConfig.Prediction names). x is
// [batch, H, W, C] float32 and t holds the [batch] int32 timesteps (see the package index
// convention). labels is nil for an unconditional model; a class-conditional one (TrainConfig.Classes
// = K > 0) gets [batch] int32 labels in [0, K], where K means "no label", and treats nil as all K.
// It returns a node shaped like x. Its variables live under scope.
type Denoiser func(scope *model.Scope, x, t, labels *Node) *Node

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
	xt, _, _ := addNoise(s, x0, eps, t)
	return xt
}

// addNoise is AddNoise that also returns the per-example coefficients a = sqrt(ᾱ_t) and
// b = sqrt(1 - ᾱ_t), shaped to broadcast against x0.
func addNoise(s *Schedule, x0, eps, t *Node) (xt, a, b *Node) {
	a = gatherPerExample(s.SqrtAlphaBars, t, x0.Rank())
	b = gatherPerExample(s.SqrtOneMinusABar, t, x0.Rank())
	return Add(Mul(a, x0), Mul(b, eps)), a, b
}

// EpsilonLoss is the simplified DDPM objective: the mean over all elements of
// (ε - ε_θ(x_t, t))², for given clean images x0, timesteps t and noise eps.
func EpsilonLoss(scope *model.Scope, s *Schedule, denoise Denoiser, x0, t, eps *Node) *Node {
	return WeightedLoss(scope, s, denoise, PredictEpsilon, x0, t, eps, nil, nil)
}

// WeightedLoss generalises EpsilonLoss: the mean squared error between the denoiser's output at x_t
// (given the class labels, nil for an unconditional model) and pred's Target, each example's squared
// error scaled by weights[t] (a [T] table, e.g. MinSNRWeights; nil means 1).
func WeightedLoss(scope *model.Scope, s *Schedule, denoise Denoiser, pred Prediction, x0, t, eps, labels *Node, weights []float64) *Node {
	xt, a, b := addNoise(s, x0, eps, t)
	sq := Square(Sub(pred.Target(x0, eps, a, b), denoise(scope, xt, t, labels)))
	if weights != nil {
		sq = Mul(sq, gatherPerExample(weights, t, x0.Rank()))
	}
	return ReduceAllMean(sq)
}

// MinSNRWeights returns the Min-SNR-γ loss weights (Hang et al. 2023, "Efficient Diffusion Training
// via Min-SNR Weighting Strategy") for the objective of pred, with SNR_t = ᾱ_t / (1 - ᾱ_t): the
// x₀-error weight min(SNR_t, γ) expressed in the ε loss, min(SNR_t, γ) / SNR_t, in the v loss,
// min(SNR_t, γ) / (SNR_t + 1), or, for x₀ prediction, itself. Low-noise steps, whose error is cheap
// to reduce and matters little for samples, are down-weighted.
func MinSNRWeights(s *Schedule, gamma float64, pred Prediction) []float64 {
	w := make([]float64, s.T)
	for i, ab := range s.AlphaBars {
		snr := ab / (1 - ab)
		switch pred.orDefault() {
		case PredictV:
			w[i] = min(snr, gamma) / (snr + 1)
		case PredictX0:
			w[i] = min(snr, gamma)
		default:
			w[i] = min(snr, gamma) / snr
		}
	}
	return w
}

// TrainConfig holds the optimisation settings of a Trainer. Zero values take the tutorial's defaults.
type TrainConfig struct {
	// LearningRate of Adam (β1 0.9, β2 0.999, ε 1e-8, as optax.adam). Default 1e-4.
	LearningRate float64
	// Seed fixes the weight initialisation and the in-graph random stream of timesteps and noise.
	Seed int64
	// EMADecay > 0 keeps an exponential moving average of the weights (see EMAScope), updated
	// after every step with decay min(EMADecay, (n-1)/(n+9)) at global step n: the warm-up makes
	// the average start as a copy of the weights and follow them closely while they change fast.
	// Samplers usually draw better images from the average than from the raw weights. 0 disables it.
	EMADecay float64
	// MinSNRGamma > 0 weights the loss with MinSNRWeights(schedule, MinSNRGamma, Prediction). 0: unweighted.
	MinSNRGamma float64
	// Prediction is what the denoiser learns to output; "" is PredictEpsilon (the tutorial).
	Prediction Prediction
	// Parallel > 1 splits each batch into that many shards whose gradients are computed
	// concurrently (same result up to float rounding); 0 means Parallelism(backend).
	Parallel int
	// Classes > 0 trains a class-conditional denoiser on labels 0..Classes-1 (see
	// Trainer.StepWithLabels); the label Classes means "no label". 0: unconditional (Step).
	Classes int
	// LabelDropout is the probability that a training example's label is replaced by "no label", so
	// that one network learns both the conditional and the unconditional prediction that
	// classifier-free guidance combines (Ho & Salimans use 0.1 to 0.2). Only with Classes > 0.
	LabelDropout float64
}

// DefaultLabelDropout is the label dropout the commands use for class-conditional training.
const DefaultLabelDropout = 0.1

// DefaultLearningRate is the tutorial's Adam learning rate.
const DefaultLearningRate = 1e-4

// Trainer runs compiled training steps: each call to Step draws timesteps and noise from the
// store's seeded random state inside the graph, runs the denoiser forward and backward and
// applies one Adam update, all in a single graph execution; or, with TrainConfig.Parallel > 1,
// the same computation with the batch's gradients computed in concurrent shards.
//
// The store holds everything needed to resume: weights, Adam moments, the global step and the
// random state; saving it with SaveCheckpoint and loading it back continues the same stream.
type Trainer struct {
	backend  compute.Backend
	store    *model.Store
	schedule *Schedule
	exec     *model.Exec  // The single-graph step.
	sharded  *shardedStep // The sharded step, when Parallel > 1.
	classes  int          // TrainConfig.Classes.
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
	if !(cfg.EMADecay >= 0 && cfg.EMADecay < 1) {
		return nil, fmt.Errorf("EMA decay %g: must be in [0, 1)", cfg.EMADecay)
	}
	if !(cfg.MinSNRGamma >= 0) || math.IsInf(cfg.MinSNRGamma, 0) {
		return nil, fmt.Errorf("min-SNR gamma %g: must be a finite number >= 0", cfg.MinSNRGamma)
	}
	pred, err := ParsePrediction(string(cfg.Prediction))
	if err != nil {
		return nil, err
	}
	if cfg.Classes < 0 {
		return nil, fmt.Errorf("classes = %d: must be >= 0 (0: unconditional)", cfg.Classes)
	}
	if !(cfg.LabelDropout >= 0 && cfg.LabelDropout <= 1) {
		return nil, fmt.Errorf("label dropout %g: must be a probability in [0, 1]", cfg.LabelDropout)
	}
	if cfg.Classes == 0 && cfg.LabelDropout != 0 {
		return nil, fmt.Errorf("label dropout %g needs a class-conditional model (Classes > 0)", cfg.LabelDropout)
	}
	var weights []float64
	if cfg.MinSNRGamma > 0 {
		weights = MinSNRWeights(s, cfg.MinSNRGamma, pred)
	}
	opt := optimizer.Adam().LearningRate(lr).Betas(0.9, 0.999).Epsilon(1e-8).Done()
	tr := &Trainer{backend: backend, store: store, schedule: s, classes: cfg.Classes}
	parallel := cfg.Parallel
	if parallel <= 0 {
		parallel = Parallelism(backend)
	}
	if parallel > 1 {
		applier, ok := opt.(gradientApplier)
		if !ok {
			return nil, fmt.Errorf("the optimizer cannot apply precomputed gradients: use Parallel 1")
		}
		tr.sharded, err = newShardedStep(backend, store, s, denoise, pred, weights, applier, cfg, parallel)
		return tr, err
	}
	exec, err := model.NewExec(backend, store, func(scope *model.Scope, in []*Node) *Node {
		x0 := in[0]
		g := x0.Graph()
		store.SetTraining(g, true)
		t, eps, labels := drawNoise(scope, s, x0, in[1:], cfg)
		loss := WeightedLoss(scope.In("model"), s, denoise, pred, x0, t, eps, labels, weights)
		opt.UpdateGraph(scope, g, loss)
		if cfg.EMADecay > 0 {
			updateEMA(store, g, cfg.EMADecay)
		}
		return loss
	})
	if err != nil {
		return nil, err
	}
	tr.exec = exec.WithName("train_step")
	return tr, nil
}

// drawNoise draws a training batch's timesteps and noise from the store's random state and, for a
// class-conditional model (labels = [the batch's labels]), replaces each label by "no label" with
// probability cfg.LabelDropout. It returns nil labels for an unconditional model.
func drawNoise(scope *model.Scope, s *Schedule, x0 *Node, labels []*Node, cfg TrainConfig) (t, eps, dropped *Node) {
	g := x0.Graph()
	batch := x0.Shape().Dimensions[0]
	t = scope.RandomIntN(g, int32(s.T), shapes.Make(dtypes.Int32, batch))
	eps = scope.RandomNormal(g, x0.Shape())
	if len(labels) == 0 {
		return t, eps, nil
	}
	dropped = labels[0]
	if cfg.LabelDropout > 0 {
		u := scope.RandomUniform(g, shapes.Make(dtypes.Float32, batch))
		none := BroadcastToDims(Const(g, int32(cfg.Classes)), batch)
		dropped = Where(LessThan(u, Scalar(g, dtypes.Float32, cfg.LabelDropout)), none, dropped)
	}
	return t, eps, dropped
}

// EMAScope is the root scope under which a Trainer with EMADecay > 0 keeps the moving average of
// each model variable: the average of "/model/x/weights" is "/ema/model/x/weights".
const EMAScope = "ema"

// emaPath returns the path of the moving average of the variable at path.
func emaPath(path string) string { return "/" + EMAScope + path }

// updateEMA adds to graph g the moving-average update of every trainable model variable, after the
// optimizer's update (so it averages the new weights). It must run after optimizer.UpdateGraph, which
// increments the global step.
func updateEMA(store *model.Store, g *Graph, maxDecay float64) {
	n := ConvertDType(optimizer.GetGlobalStepVar(store).NodeValue(g), dtypes.Float32) // Already incremented.
	decay := Min(Div(SubScalar(n, 1), AddScalar(n, 9)), Scalar(g, dtypes.Float32, maxDecay))
	modelPrefix := ModelScope(store).Scope() + "/"
	var vars []*model.Variable
	for v := range store.IterVariables() {
		if v.Trainable && v.InUseByGraph(g) && strings.HasPrefix(v.Path(), modelPrefix) {
			vars = append(vars, v)
		}
	}
	for _, v := range vars {
		avgVar := store.VariableWithShape(emaPath(v.Path()), v.Shape(), initializer.Zero).SetTrainable(false)
		value := v.NodeValue(g)
		avg := avgVar.NodeValue(g)
		d := ConvertDType(decay, value.DType())
		avgVar.SetNodeValue(Add(Mul(d, avg), Mul(OneMinus(d), value)))
	}
}

// UseEMAWeights replaces the values of the model variables of store by their moving averages (kept
// by a Trainer with EMADecay > 0), for sampling. It reports whether the store had averages; without
// them it changes nothing.
func UseEMAWeights(store *model.Store) (bool, error) {
	modelPrefix := ModelScope(store).Scope() + "/"
	type pair struct{ v, avg *model.Variable }
	var pairs []pair
	for v := range store.IterVariables() {
		if !strings.HasPrefix(v.Path(), modelPrefix) || !v.Trainable {
			continue
		}
		if avg := store.GetVariable(emaPath(v.Path())); avg != nil && avg.HasValue() {
			pairs = append(pairs, pair{v, avg})
		}
	}
	for _, p := range pairs {
		value, err := p.avg.Value()
		if err != nil {
			return false, err
		}
		clone, err := value.Clone()
		if err != nil {
			return false, err
		}
		if err := p.v.SetValue(clone); err != nil {
			return false, fmt.Errorf("EMA weights of %s: %w", p.v.Path(), err)
		}
	}
	return len(pairs) > 0, nil
}

// Step runs one training step of an unconditional model on a batch of clean images x0 ([batch, H,
// W, C] float32 in [-1, 1]) and returns the batch's mean loss. A NaN or infinite loss is returned
// as an error.
func (tr *Trainer) Step(x0 *tensors.Tensor) (float64, error) {
	if tr.classes > 0 {
		return 0, fmt.Errorf("the model is class-conditional (%d classes): train it with StepWithLabels", tr.classes)
	}
	return tr.step(x0, nil)
}

// StepWithLabels is Step for a class-conditional model (TrainConfig.Classes = K > 0): labels holds
// each image's class in [0, K) (or K for an image without label); TrainConfig.LabelDropout of them,
// drawn at random, are replaced by K.
func (tr *Trainer) StepWithLabels(x0 *tensors.Tensor, labels []int32) (float64, error) {
	if tr.classes == 0 {
		return 0, fmt.Errorf("labels given to an unconditional model: train it with Step, or set TrainConfig.Classes")
	}
	if n := x0.Shape().Dimensions[0]; len(labels) != n {
		return 0, fmt.Errorf("%d labels for a batch of %d images", len(labels), n)
	}
	if err := checkLabels(labels, tr.classes, true); err != nil {
		return 0, err
	}
	l := tensors.FromValue(labels)
	defer l.FinalizeAll()
	return tr.step(x0, l)
}

// checkLabels reports a label outside [0, classes) (or [0, classes] with noLabel, classes meaning
// "no label").
func checkLabels(labels []int32, classes int, noLabel bool) error {
	top := int32(classes)
	if noLabel {
		top++
	}
	for i, l := range labels {
		if l < 0 || l >= top {
			return fmt.Errorf("label %d of example %d is outside [0, %d): the model has %d classes", l, i, top, classes)
		}
	}
	return nil
}

// step runs one training step; labels is nil for an unconditional model.
func (tr *Trainer) step(x0, labels *tensors.Tensor) (float64, error) {
	args := []any{x0}
	if labels != nil {
		args = append(args, labels)
	}
	var loss float64
	if tr.sharded != nil {
		var err error
		if loss, err = tr.sharded.step(x0, labels); err != nil {
			return 0, err
		}
	} else {
		outs, err := tr.exec.Exec(args...)
		if err != nil {
			return 0, err
		}
		loss = float64(outs[0].Value().(float32))
	}
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
