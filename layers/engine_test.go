package layers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/backend"
)

// TestFormulationsAgree builds one small U-Net with both formulations on every engine installed
// here and compares, from the same weights and inputs, the outputs and the gradients of a weighted
// sum of them with respect to the input and every variable. The Go formulation's gradients are
// checked against finite differences elsewhere (TestLayerGradients, TestUNetGradients), so this
// checks the native one, in float32, on each engine.
func TestFormulationsAgree(t *testing.T) {
	configs := map[string]UNetConfig{"tutorial blocks": Tiny()}
	pre := Tiny()
	pre.PreNorm, pre.InitScale = true, 1
	configs["pre-activation blocks"] = pre
	for _, engine := range backend.Installed() {
		b, err := backend.NewWithConfig(engine)
		if err != nil {
			t.Errorf("engine %s: %v", engine, err)
			continue
		}
		for name, cfg := range configs {
			t.Run(fmt.Sprintf("%s/%s", engine, name), func(t *testing.T) {
				store := model.NewStore()
				store.SetParam(model.ParamInitialSeed, int64(3))
				x, ts := randomBatch(rand.New(rand.NewPCG(5, 6)), 3, cfg.ImageSize)
				var vars []*model.Variable
				run := func(f Formulation) [][]float32 {
					e := model.MustNewExec(b, store, func(scope *model.Scope, x, ts *graph.Node) []*graph.Node {
						g := x.Graph()
						store.SetTraining(g, true)
						SetFormulation(g, f)
						out := UNet(scope, x, ts, cfg)
						w := graph.Sin(graph.IotaFull(g, out.Shape())) // Fixed adjoint weights.
						loss := graph.ReduceAllSum(graph.Mul(out, w))
						vars = vars[:0]
						wrt := []*graph.Node{x}
						for v := range store.IterVariables() {
							if v.Trainable {
								vars = append(vars, v)
								wrt = append(wrt, v.NodeValue(g))
							}
						}
						return append([]*graph.Node{out}, graph.Gradient(loss, wrt...)...)
					})
					defer e.Finalize()
					var flat [][]float32
					for _, o := range e.MustCall(x, ts) {
						flat = append(flat, tensors.MustCopyFlatData[float32](o))
					}
					return flat
				}
				goForm, nativeForm := run(FormulationGo), run(FormulationNative)
				if len(goForm) != len(nativeForm) || len(goForm) != len(vars)+2 {
					t.Fatalf("%d outputs with the Go formulation, %d native, for %d variables", len(goForm), len(nativeForm), len(vars))
				}
				names := append([]string{"output", "gradient of the input"}, make([]string, len(vars))...)
				for i, v := range vars {
					names[i+2] = "gradient of " + v.Path()
				}
				worst := 0.0
				for i := range goForm {
					diff, norm := 0.0, 0.0
					for j := range goForm[i] {
						d := float64(goForm[i][j] - nativeForm[i][j])
						diff += d * d
						norm += float64(goForm[i][j]) * float64(goForm[i][j])
					}
					rel := math.Sqrt(diff / max(norm, 1e-10))
					worst = max(worst, rel)
					if rel > 1e-3 || math.IsNaN(rel) {
						t.Errorf("%s: native and Go formulations differ by %.2g (relative L2)", names[i], rel)
					}
				}
				t.Logf("%d outputs and gradients agree within %.2g (relative L2)", len(goForm), worst)
			})
		}
	}
}
