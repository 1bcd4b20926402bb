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

// BenchmarkFormulations times the pieces whose form engine.go chooses, forward and backward, in
// each formulation on the engine of the tests ($GOMLX_BACKEND or the automatic choice), at the
// sizes of the cpu preset at batch 8: which of the Go backend's forms still win is read here
// (docs/performance.md).
func BenchmarkFormulations(b *testing.B) {
	be := getBackend(b)
	rng := rand.New(rand.NewPCG(7, 8))
	pieces := []struct {
		name string
		dims []int
		fn   func(scope *model.Scope, x *graph.Node) *graph.Node
	}{
		{"SiLU/32x32x16", []int{8, 32, 32, 16}, func(_ *model.Scope, x *graph.Node) *graph.Node { return SiLU(x) }},
		{"GeluTanh/32x32x16", []int{8, 32, 32, 16}, func(_ *model.Scope, x *graph.Node) *graph.Node { return GeluTanh(x) }},
		{"Attention/8x8x64", []int{8, 8, 8, 64}, func(s *model.Scope, x *graph.Node) *graph.Node { return Attention(s, x, 4) }},
		{"Dense/512x128", []int{8, 64, 128}, func(s *model.Scope, x *graph.Node) *graph.Node { return Dense(s, x, 128, true) }},
		{"Conv3x3/32x32x16", []int{8, 32, 32, 16}, func(s *model.Scope, x *graph.Node) *graph.Node {
			return Conv(s, x).Channels(16).KernelSize(3).Done()
		}},
		{"Conv3x3/8x8x64", []int{8, 8, 8, 64}, func(s *model.Scope, x *graph.Node) *graph.Node {
			return Conv(s, x).Channels(64).KernelSize(3).Done()
		}},
		{"Downsample/32x32x16", []int{8, 32, 32, 16}, func(s *model.Scope, x *graph.Node) *graph.Node {
			return Conv(s, x).Channels(16).KernelSize(4).Stride(2).Done()
		}},
		{"Upsample/16x16x32", []int{8, 16, 16, 32}, func(s *model.Scope, x *graph.Node) *graph.Node {
			return ConvTranspose(s, x).Channels(32).KernelSize(4).Stride(2).Done()
		}},
	}
	for _, p := range pieces {
		size := 1
		for _, d := range p.dims {
			size *= d
		}
		data := make([]float32, size)
		for i := range data {
			data[i] = float32(rng.NormFloat64())
		}
		x := tensors.FromFlatDataAndDimensions(data, p.dims...)
		for _, f := range []Formulation{FormulationGo, FormulationNative} {
			b.Run(fmt.Sprintf("%s/%s", p.name, f), func(b *testing.B) {
				store := model.NewStore()
				e := model.MustNewExec(be, store, func(scope *model.Scope, x *graph.Node) []*graph.Node {
					g := x.Graph()
					store.SetTraining(g, true)
					SetFormulation(g, f)
					out := p.fn(scope, x)
					loss := graph.ReduceAllSum(graph.Mul(out, graph.Sin(graph.IotaFull(g, out.Shape()))))
					wrt := []*graph.Node{x}
					for v := range store.IterVariables() {
						if v.Trainable {
							wrt = append(wrt, v.NodeValue(g))
						}
					}
					return graph.Gradient(loss, wrt...)
				})
				run := func() {
					for _, t := range e.MustCall(x) {
						t.FinalizeAll()
					}
				}
				run()
				for b.Loop() {
					run()
				}
			})
		}
	}
}
