package gradcheck

import (
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/backend"
)

func TestInputs(t *testing.T) {
	b, err := backend.New()
	if err != nil {
		t.Fatal(err)
	}
	x := tensors.FromValue([][]float64{{0.5, -1.2, 2}, {0.1, 0.7, -0.3}})
	y := tensors.FromValue([][]float64{{1.5, -0.5, 0.25}})
	for _, tc := range []struct {
		name    string
		fn      func(in []*graph.Node) *graph.Node
		inputs  []*tensors.Tensor
		opts    Options
		maxErr  float64
		wantErr string
	}{
		{"scalar loss", func(in []*graph.Node) *graph.Node {
			return graph.ReduceAllSum(graph.Mul(graph.Tanh(in[0]), graph.Exp(in[1])))
		}, []*tensors.Tensor{x, y}, Options{}, 1e-7, ""},
		{"non-scalar output", func(in []*graph.Node) *graph.Node {
			return graph.Sin(graph.Mul(in[0], in[0]))
		}, []*tensors.Tensor{x}, Options{}, 1e-7, ""},
		{"float32", func(in []*graph.Node) *graph.Node {
			return graph.Mul(in[0], in[0])
		}, []*tensors.Tensor{tensors.FromValue([]float32{0.5, -2, 3})}, Options{}, 1e-2, ""},
		{"integer input is skipped", func(in []*graph.Node) *graph.Node {
			return graph.Mul(in[0], graph.ConvertDType(graph.Reshape(in[1], 1, 3), dtypes.Float64))
		}, []*tensors.Tensor{y, tensors.FromValue([]int32{1, 2, 3})}, Options{}, 1e-7, ""},
		{"no float inputs", func(in []*graph.Node) *graph.Node {
			return graph.ConvertDType(in[0], dtypes.Float64)
		}, []*tensors.Tensor{tensors.FromValue([]int32{1, 2, 3})}, Options{}, 0, "no float inputs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			results, err := Inputs(b, tc.fn, tc.inputs, tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			worst, summary := MaxRelErr(results)
			t.Log(summary)
			if worst > tc.maxErr {
				t.Errorf("max rel err %g > %g", worst, tc.maxErr)
			}
		})
	}
}

// TestDetectsWrongGradient checks that a function whose gradient is deliberately wrong is caught: the
// StopGradient hides the dependency of the second term from graph.Gradient, but not from finite differences.
func TestDetectsWrongGradient(t *testing.T) {
	b, err := backend.New()
	if err != nil {
		t.Fatal(err)
	}
	x := tensors.FromValue([]float64{0.3, -0.8, 1.1, 2.0})
	results, err := Inputs(b, func(in []*graph.Node) *graph.Node {
		x := in[0]
		wrongAtOneEntry := graph.Mul(graph.StopGradient(x), graph.Const(x.Graph(), []float64{0, 0, 1, 0}))
		return graph.Add(graph.Mul(x, x), graph.Mul(wrongAtOneEntry, x))
	}, []*tensors.Tensor{x}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if worst, summary := MaxRelErr(results); worst < 0.1 {
		t.Errorf("wrong gradient not detected: max rel err %g\n%s", worst, summary)
	}
}

func TestVariables(t *testing.T) {
	b, err := backend.New()
	if err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	store.SetParam(model.ParamInitialSeed, int64(1))
	x := tensors.FromValue([][]float64{{0.5, -1.2, 2}, {0.1, 0.7, -0.3}})
	results, err := Variables(b, store, func(scope *model.Scope, in []*graph.Node) *graph.Node {
		g := in[0].Graph()
		w := scope.WithInitializer(func(g *graph.Graph, shape shapes.Shape) *graph.Node {
			return graph.MulScalar(scope.RandomNormal(g, shape), 0.5)
		}).VariableWithShape("w", shapes.Make(dtypes.Float64, 3, 4)).NodeValue(g)
		return graph.Tanh(graph.Dot(in[0], w).Product())
	}, []*tensors.Tensor{x}, true, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 {
		t.Fatalf("got %d results, want 2 (variable w and input #0)", len(results))
	}
	worst, summary := MaxRelErr(results)
	t.Log(summary)
	if worst > 1e-7 {
		t.Errorf("max rel err %g", worst)
	}
	// The variable must be restored after the check.
	before := tensors.MustCopyFlatData[float64](store.GetVariable("/w").MustValue())
	_, _ = Variables(b, store, func(scope *model.Scope, in []*graph.Node) *graph.Node {
		return graph.Mul(scope.GetVariable("w").NodeValue(in[0].Graph()), in[0])
	}, []*tensors.Tensor{tensors.FromValue(2.0)}, false, Options{})
	after := tensors.MustCopyFlatData[float64](store.GetVariable("/w").MustValue())
	for i := range before {
		if before[i] != after[i] {
			t.Fatalf("variable not restored: %v vs %v", before, after)
		}
	}
}
