package diffusion

import (
	"errors"
	"fmt"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style: graph ops read as math.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train/optimizer"
)

// gradientApplier is the part of GoMLX's Adam that applies given gradients.
type gradientApplier interface {
	UpdateGraphWithGradients(scope *model.Scope, grads []*Node, lossDType dtypes.DType)
}

// shardedStep is a training step split into pieces for backends that run one graph on about one
// core (see Parallelism): one small graph draws the batch's timesteps and noise from the store's
// random state (the same draws, in the same order, as the single-graph step), the batch is cut into
// shards whose gradients are computed concurrently, and one graph sums them and applies Adam (and
// the moving average). The result equals the single-graph step up to float rounding.
type shardedStep struct {
	backend  compute.Backend
	store    *model.Store
	parallel int
	noise    *model.Exec // x0 (, labels) -> t, ε (, labels after dropout) for the whole batch.
	grads    *model.Exec // x0, t, ε, scale (, labels) -> shard loss, scale x the gradients of the shard's mean loss.
	apply    *model.Exec // all shards' gradients -> global step, with the variables updated.
	vars     []*model.Variable
	compiled map[int]bool // Shard sizes whose gradient graph has been built (see prepare).
	labeled  bool         // Class-conditional: labels follow the images.
}

func newShardedStep(backend compute.Backend, store *model.Store, s *Schedule, denoise Denoiser, pred Prediction,
	weights []float64, opt gradientApplier, cfg TrainConfig, parallel int) (*shardedStep, error) {
	st := &shardedStep{backend: backend, store: store, parallel: parallel, compiled: map[int]bool{}, labeled: cfg.Classes > 0}
	var err error
	st.noise, err = model.NewExec(backend, store, func(scope *model.Scope, in []*Node) []*Node {
		g := in[0].Graph()
		store.SetTraining(g, true) // Reads and advances the random state: a variable, never a constant.
		t, eps, labels := drawNoise(scope, s, in[0], in[1:], cfg)
		if labels == nil {
			return []*Node{t, eps}
		}
		return []*Node{t, eps, labels}
	})
	if err != nil {
		return nil, err
	}
	st.grads, err = model.NewExec(backend, store, func(scope *model.Scope, in []*Node) []*Node {
		x0, t, eps, scale := in[0], in[1], in[2], in[3]
		var labels *Node
		if len(in) > 4 {
			labels = in[4]
		}
		g := x0.Graph()
		store.SetTraining(g, true)
		loss := WeightedLoss(scope.In("model"), s, denoise, pred, x0, t, eps, labels, weights)
		grads := scope.BuildTrainableVariablesGradientsGraph(Mul(loss, scale))
		var vars []*model.Variable // In the order of grads (see BuildTrainableVariablesGradientsGraph).
		for v := range scope.IterVariables() {
			if v.Trainable && v.InUseByGraph(g) {
				vars = append(vars, v)
			}
		}
		st.vars = vars
		return append([]*Node{loss}, grads...)
	})
	if err != nil {
		return nil, err
	}
	st.apply, err = model.NewExec(backend, store, func(scope *model.Scope, in []*Node) *Node {
		g := in[0].Graph()
		store.SetTraining(g, true) // Updates the weights, Adam's moments and the step counter.
		nv := len(st.vars)
		grads := make([]*Node, nv)
		for i, v := range st.vars {
			_ = v.NodeValue(g) // Marks the variable as used, so the optimizer updates it.
			grads[i] = in[i]
			for k := 1; k < len(in)/nv; k++ {
				grads[i] = Add(grads[i], in[k*nv+i])
			}
		}
		opt.UpdateGraphWithGradients(scope, grads, dtypes.Float32)
		if cfg.EMADecay > 0 {
			updateEMA(store, g, cfg.EMADecay)
		}
		return optimizer.GetGlobalStepVar(store).NodeValue(g)
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// prepare builds the gradient graphs of the shard sizes of a batch of n not seen yet, which creates
// the model's variables, and initialises those variables before the step draws its noise: the
// random state is then consumed in the same order as by the single-graph step (initialisation,
// then timesteps and noise), so both start from the same weights.
func (st *shardedStep) prepare(dims []int, shards int) error {
	n := dims[0]
	built := false
	for k := range shards {
		first, last := shardBounds(k, n, shards)
		size := last - first
		if st.compiled[size] {
			continue
		}
		imgs := shapes.Make(dtypes.Float32, append([]int{size}, dims[1:]...)...)
		ins := []shapes.Shape{imgs, shapes.Make(dtypes.Int32, size), imgs, shapes.Make(dtypes.Float32)}
		if st.labeled {
			ins = append(ins, shapes.Make(dtypes.Int32, size))
		}
		if _, err := st.grads.Compile(ins...); err != nil {
			return err
		}
		st.compiled[size], built = true, true
	}
	if built {
		return st.store.InitializeVariables(st.backend, nil)
	}
	return nil
}

// step runs one training step on the batch x0 (with its labels, nil for an unconditional model)
// and returns its mean loss.
func (st *shardedStep) step(x0, labels *tensors.Tensor) (float64, error) {
	dims := x0.Shape().Dimensions
	n, per := dims[0], x0.Shape().Size()/dims[0]
	shards := min(st.parallel, n)
	if err := st.prepare(dims, shards); err != nil {
		return 0, err
	}
	in := []any{x0}
	if labels != nil {
		in = append(in, labels)
	}
	drawn, err := st.noise.Exec(in...)
	if err != nil {
		return 0, err
	}
	defer finalizeAll(drawn)
	xs, err := tensors.CopyFlatData[float32](x0)
	if err != nil {
		return 0, err
	}
	ts, err := tensors.CopyFlatData[int32](drawn[0])
	if err != nil {
		return 0, err
	}
	es, err := tensors.CopyFlatData[float32](drawn[1])
	if err != nil {
		return 0, err
	}
	var ls []int32
	if labels != nil {
		if ls, err = tensors.CopyFlatData[int32](drawn[2]); err != nil {
			return 0, err
		}
	}

	outs := make([][]*tensors.Tensor, shards)
	errs := make([]error, shards)
	var wg sync.WaitGroup
	for k := range shards {
		first, last := shardBounds(k, n, shards)
		shardDims := append([]int{last - first}, dims[1:]...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := []any{
				tensors.FromFlatDataAndDimensions(xs[first*per:last*per], shardDims...),
				tensors.FromFlatDataAndDimensions(ts[first:last], last-first),
				tensors.FromFlatDataAndDimensions(es[first*per:last*per], shardDims...),
				float32(last-first) / float32(n)}
			if ls != nil {
				in = append(in, tensors.FromFlatDataAndDimensions(ls[first:last], last-first))
			}
			outs[k], errs[k] = st.grads.Exec(in...)
		}()
	}
	wg.Wait()
	defer func() {
		for _, o := range outs {
			finalizeAll(o)
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	loss := 0.0
	args := make([]any, 0, shards*len(st.vars))
	for k, o := range outs {
		if len(o) != len(st.vars)+1 {
			return 0, fmt.Errorf("shard %d: %d outputs for %d variables", k, len(o), len(st.vars))
		}
		first, last := shardBounds(k, n, shards)
		loss += float64(o[0].Value().(float32)) * float64(last-first) / float64(n)
		for _, g := range o[1:] {
			args = append(args, g)
		}
	}
	applied, err := st.apply.Exec(args...)
	if err != nil {
		return 0, err
	}
	finalizeAll(applied)
	return loss, nil
}

func finalizeAll(ts []*tensors.Tensor) {
	for _, t := range ts {
		t.FinalizeAll()
	}
}
