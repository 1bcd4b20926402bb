// Package gradcheck compares GoMLX's symbolic gradients (graph.Gradient) against central finite differences.
//
// It is test support: build the function under test in Float64 (inputs and, for layers, the variables, which
// the layers create in the input's dtype) so that finite differences are accurate, and expect relative errors
// around 1e-8 or smaller. Float32 works too, with a larger Eps (~1e-2) and tolerance (~1e-2).
//
// Two kinds of checks are made for every differentiated tensor:
//   - directional: for a few random directions v, <grad, v> against (f(x+eps*v) - f(x-eps*v)) / (2*eps);
//     this covers every coordinate at once;
//   - coordinate: for a sample of single coordinates i, grad[i] against (f(x+eps*e_i) - f(x-eps*e_i)) / (2*eps);
//     this catches errors localized at a few entries (borders, strides).
//
// If the checked function returns a non-scalar, it is reduced to a scalar as sum(y * r), with r a fixed
// pseudo-random tensor, so that every output entry matters.
package gradcheck

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// Options configure a gradient check. The zero value of a field means its default.
type Options struct {
	// Eps is the finite difference step. Default 1e-5 for Float64, 1e-2 for Float32.
	Eps float64
	// Directions is the number of random directions checked per tensor. Default 3.
	Directions int
	// Coordinates is the number of single coordinates checked per tensor (all if the tensor is smaller). Default 8.
	Coordinates int
	// Floor is added to the denominator of the relative error, so that near-zero derivatives are compared
	// absolutely. Default 1e-6 for Float64, 1e-3 for Float32.
	Floor float64
	// Seed for the random directions, coordinates and the projection of non-scalar outputs. Default 1.
	Seed uint64
}

func (o Options) withDefaults(dtype dtypes.DType) Options {
	f64 := dtype == dtypes.Float64
	if o.Eps == 0 {
		o.Eps = 1e-2
		if f64 {
			o.Eps = 1e-5
		}
	}
	if o.Directions == 0 {
		o.Directions = 3
	}
	if o.Coordinates == 0 {
		o.Coordinates = 8
	}
	if o.Floor == 0 {
		o.Floor = 1e-3
		if f64 {
			o.Floor = 1e-6
		}
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	return o
}

// Result of checking the gradient with respect to one tensor (an input or a variable).
type Result struct {
	// Name of the tensor: "input #i" or the variable's scope path.
	Name string
	// MaxRelErr is the largest relative error |analytic - numeric| / (max(|analytic|, |numeric|) + Floor)
	// over all the directional and coordinate checks.
	MaxRelErr float64
	// Worst describes the check with the largest error.
	Worst string
	// Checks is the number of comparisons made.
	Checks int
}

// String implements fmt.Stringer.
func (r Result) String() string {
	return fmt.Sprintf("%s: max rel err %.3g over %d checks (worst: %s)", r.Name, r.MaxRelErr, r.Checks, r.Worst)
}

// MaxRelErr returns the largest MaxRelErr among results, and a summary of all of them.
func MaxRelErr(results []Result) (float64, string) {
	worst := 0.0
	var lines []string
	for _, r := range results {
		worst = max(worst, r.MaxRelErr)
		lines = append(lines, r.String())
	}
	return worst, strings.Join(lines, "\n")
}

// Inputs checks the gradient of fn with respect to each of its float inputs.
//
// fn builds the function; it may return a scalar or any shape (see package doc).
// inputs are the point where gradients are checked; non-float inputs are passed but not checked.
func Inputs(backend compute.Backend, fn func(inputs []*graph.Node) *graph.Node, inputs []*tensors.Tensor,
	opts Options) (results []Result, err error) {
	defer catch(&err)
	if len(inputs) == 0 {
		return nil, fmt.Errorf("gradcheck.Inputs: no inputs")
	}
	var checked []int
	for i, in := range inputs {
		if in.DType().IsFloat() {
			checked = append(checked, i)
		}
	}
	if len(checked) == 0 {
		return nil, fmt.Errorf("gradcheck.Inputs: no float inputs to check")
	}
	opts = opts.withDefaults(inputs[checked[0]].DType())
	seed := opts.Seed
	lossFn := func(xs []*graph.Node) *graph.Node { return toScalar(fn(xs), seed) }
	lossExec := graph.MustNewExec(backend, func(xs []*graph.Node) *graph.Node { return lossFn(xs) })
	gradExec := graph.MustNewExec(backend, func(xs []*graph.Node) []*graph.Node {
		loss := lossFn(xs)
		wrt := make([]*graph.Node, len(checked))
		for j, i := range checked {
			wrt[j] = xs[i]
		}
		return graph.Gradient(loss, wrt...)
	})
	defer lossExec.Finalize()
	defer gradExec.Finalize()

	args := make([]any, len(inputs))
	for i, in := range inputs {
		args[i] = in
	}
	grads := gradExec.MustCall(args...)
	rng := rand.New(rand.NewPCG(opts.Seed, 7))
	for j, i := range checked {
		x0 := toFloat64(inputs[i])
		g := toFloat64(grads[j])
		eval := func(x []float64) float64 {
			a := make([]any, len(args))
			copy(a, args)
			a[i] = fromFloat64(x, inputs[i])
			return scalarValue(lossExec.MustCall(a...)[0])
		}
		r := compare(fmt.Sprintf("input #%d %s", i, inputs[i].Shape()), x0, g, eval, opts, rng)
		results = append(results, r)
	}
	return results, nil
}

// Variables checks the gradient of fn with respect to the trainable variables it uses in store, and optionally
// with respect to its float inputs too (checkInputs).
//
// fn builds the function, creating variables in scope as layers do; it may return a scalar or any shape.
// The store's variables are initialized (by a first execution) if they don't have values yet. Variables are
// perturbed in place during the check and restored at the end.
func Variables(backend compute.Backend, store *model.Store, fn func(scope *model.Scope, inputs []*graph.Node) *graph.Node,
	inputs []*tensors.Tensor, checkInputs bool, opts Options) (results []Result, err error) {
	defer catch(&err)
	seed := opts.Seed
	if seed == 0 {
		seed = 1
	}
	lossFn := func(scope *model.Scope, xs []*graph.Node) *graph.Node { return toScalar(fn(scope, xs), seed) }
	args := make([]any, len(inputs))
	for i, in := range inputs {
		args[i] = in
	}
	// Both graphs are marked training: the check changes the variables between executions, so
	// they must stay graph parameters, not constants baked in at compilation (see
	// compute.Capabilities.PreferConstantsForVariables).
	lossExec := model.MustNewExec(backend, store, func(scope *model.Scope, xs []*graph.Node) *graph.Node {
		store.SetTraining(xs[0].Graph(), true)
		return lossFn(scope, xs)
	})
	defer lossExec.Finalize()
	// First call: creates and initializes the variables.
	_ = lossExec.MustCall(args...)

	var vars []*model.Variable
	for v := range store.IterVariables() {
		if v.Trainable && v.DType().IsFloat() {
			vars = append(vars, v)
		}
	}
	if len(vars) == 0 {
		return nil, fmt.Errorf("gradcheck.Variables: fn created no trainable float variables")
	}
	var checkedInputs []int
	if checkInputs {
		for i, in := range inputs {
			if in.DType().IsFloat() {
				checkedInputs = append(checkedInputs, i)
			}
		}
	}
	opts = opts.withDefaults(vars[0].DType())

	gradExec := model.MustNewExec(backend, store, func(scope *model.Scope, xs []*graph.Node) []*graph.Node {
		store.SetTraining(xs[0].Graph(), true)
		loss := lossFn(scope, xs)
		g := loss.Graph()
		var wrt []*graph.Node
		for _, v := range vars {
			wrt = append(wrt, v.NodeValue(g))
		}
		for _, i := range checkedInputs {
			wrt = append(wrt, xs[i])
		}
		return graph.Gradient(loss, wrt...)
	})
	defer gradExec.Finalize()
	grads := gradExec.MustCall(args...)

	rng := rand.New(rand.NewPCG(opts.Seed, 11))
	for j, v := range vars {
		original := v.MustValue()
		originalCopy := fromFloat64(toFloat64(original), original)
		x0 := toFloat64(original)
		eval := func(x []float64) float64 {
			v.MustSetValue(fromFloat64(x, originalCopy))
			return scalarValue(lossExec.MustCall(args...)[0])
		}
		r := compare(fmt.Sprintf("var %s %s", v.Path(), v.Shape()), x0, toFloat64(grads[j]), eval, opts, rng)
		v.MustSetValue(originalCopy)
		results = append(results, r)
	}
	for k, i := range checkedInputs {
		eval := func(x []float64) float64 {
			a := make([]any, len(args))
			copy(a, args)
			a[i] = fromFloat64(x, inputs[i])
			return scalarValue(lossExec.MustCall(a...)[0])
		}
		r := compare(fmt.Sprintf("input #%d %s", i, inputs[i].Shape()), toFloat64(inputs[i]),
			toFloat64(grads[len(vars)+k]), eval, opts, rng)
		results = append(results, r)
	}
	return results, nil
}

// compare runs the directional and coordinate checks of the analytic gradient g of eval at x0.
func compare(name string, x0, g []float64, eval func(x []float64) float64, opts Options, rng *rand.Rand) Result {
	res := Result{Name: name}
	n := len(x0)
	x := make([]float64, n)
	record := func(analytic, numeric float64, what string) {
		rel := math.Abs(analytic-numeric) / (max(math.Abs(analytic), math.Abs(numeric)) + opts.Floor)
		if math.IsNaN(rel) {
			rel = math.Inf(1)
		}
		res.Checks++
		if rel > res.MaxRelErr || res.Worst == "" {
			res.MaxRelErr = max(res.MaxRelErr, rel)
			res.Worst = fmt.Sprintf("%s: analytic %.6g, numeric %.6g", what, analytic, numeric)
		}
	}
	// Directional checks with random unit-variance directions scaled to unit norm.
	for d := 0; d < opts.Directions; d++ {
		v := make([]float64, n)
		norm := 0.0
		for i := range v {
			v[i] = rng.NormFloat64()
			norm += v[i] * v[i]
		}
		norm = math.Sqrt(norm)
		analytic := 0.0
		for i := range v {
			v[i] /= norm
			analytic += g[i] * v[i]
		}
		for i := range x {
			x[i] = x0[i] + opts.Eps*v[i]
		}
		fPlus := eval(x)
		for i := range x {
			x[i] = x0[i] - opts.Eps*v[i]
		}
		fMinus := eval(x)
		record(analytic, (fPlus-fMinus)/(2*opts.Eps), fmt.Sprintf("direction #%d", d))
	}
	// Coordinate checks.
	var coords []int
	if n <= opts.Coordinates {
		for i := range n {
			coords = append(coords, i)
		}
	} else {
		coords = rng.Perm(n)[:opts.Coordinates]
	}
	for _, i := range coords {
		copy(x, x0)
		x[i] = x0[i] + opts.Eps
		fPlus := eval(x)
		x[i] = x0[i] - opts.Eps
		fMinus := eval(x)
		record(g[i], (fPlus-fMinus)/(2*opts.Eps), fmt.Sprintf("coordinate %d", i))
	}
	return res
}

// toScalar reduces y to a scalar: itself if it is a scalar, sum(y * r) with a fixed pseudo-random r otherwise.
func toScalar(y *graph.Node, seed uint64) *graph.Node {
	if y.Shape().IsScalar() {
		return y
	}
	if !y.DType().IsFloat() {
		panic(fmt.Errorf("gradcheck: function output must be float, got %s", y.Shape()))
	}
	rng := rand.New(rand.NewPCG(seed, 3))
	r := make([]float64, y.Shape().Size())
	for i := range r {
		r[i] = rng.NormFloat64()
	}
	rNode := graph.ConvertDType(graph.Const(y.Graph(), tensors.FromFlatDataAndDimensions(r, y.Shape().Dimensions...)), y.DType())
	return graph.ReduceAllSum(graph.Mul(y, rNode))
}

// toFloat64 copies a float tensor's values as float64.
func toFloat64(t *tensors.Tensor) []float64 {
	switch t.DType() {
	case dtypes.Float64:
		return tensors.MustCopyFlatData[float64](t)
	case dtypes.Float32:
		f32 := tensors.MustCopyFlatData[float32](t)
		out := make([]float64, len(f32))
		for i, v := range f32 {
			out[i] = float64(v)
		}
		return out
	default:
		panic(fmt.Errorf("gradcheck: only Float32 and Float64 are supported, got %s", t.Shape()))
	}
}

// fromFloat64 creates a tensor with like's shape and dtype from float64 values.
func fromFloat64(x []float64, like *tensors.Tensor) *tensors.Tensor {
	dims := like.Shape().Dimensions
	switch like.DType() {
	case dtypes.Float64:
		return tensors.FromFlatDataAndDimensions(append([]float64(nil), x...), dims...)
	case dtypes.Float32:
		f32 := make([]float32, len(x))
		for i, v := range x {
			f32[i] = float32(v)
		}
		return tensors.FromFlatDataAndDimensions(f32, dims...)
	default:
		panic(fmt.Errorf("gradcheck: only Float32 and Float64 are supported, got %s", like.Shape()))
	}
}

// scalarValue returns a scalar float tensor's value as float64.
func scalarValue(t *tensors.Tensor) float64 {
	v := toFloat64(t)
	if len(v) != 1 {
		panic(fmt.Errorf("gradcheck: expected a scalar loss, got %s", t.Shape()))
	}
	return v[0]
}

// catch converts a panic into an error.
func catch(err *error) {
	if r := recover(); r != nil {
		if e, ok := r.(error); ok {
			*err = fmt.Errorf("gradcheck: %w", e)
		} else {
			*err = fmt.Errorf("gradcheck: %v", r)
		}
	}
}
