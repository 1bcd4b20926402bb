package layers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/backend"
	"github.com/godiffusion/godiffusion/internal/gradcheck"
)

func TestUNetConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		modify  func(c *UNetConfig)
		wantErr string // "" means valid.
	}{
		{"tutorial", func(c *UNetConfig) {}, ""},
		{"cpu", func(c *UNetConfig) { *c = CPU() }, ""},
		{"tiny", func(c *UNetConfig) { *c = Tiny() }, ""},
		{"groups", func(c *UNetConfig) { c.Groups = 3 }, "not divisible by Groups 3"},
		{"heads", func(c *UNetConfig) { c.Heads = 64 }, "not divisible by Heads 64"},
		{"image size", func(c *UNetConfig) { c.ImageSize = 36 }, "must be divisible by PatchSize*2^(levels-1) = 8"},
		{"patch", func(c *UNetConfig) { c.PatchSize = 2; c.AttentionResolutions = []int{16, 8} }, ""},
		{"patch too large", func(c *UNetConfig) { c.PatchSize = 8 }, "PatchSize*2^(levels-1) = 64"},
		{"negative patch", func(c *UNetConfig) { c.PatchSize = -1 }, "PatchSize must be >= 0"},
		{"patched attention resolution", func(c *UNetConfig) { c.PatchSize = 2 }, "AttentionResolutions has 32"},
		{"attention resolution", func(c *UNetConfig) { c.AttentionResolutions = []int{7} }, "not a level resolution"},
		{"no levels", func(c *UNetConfig) { c.WidthMults = nil }, "WidthMults is empty"},
		{"zero width", func(c *UNetConfig) { c.BaseWidth = 0 }, "BaseWidth must be > 0"},
		{"init scale", func(c *UNetConfig) { c.InitScale = 0.1 }, ""},
		{"negative init scale", func(c *UNetConfig) { c.InitScale = -1 }, "InitScale must be a finite number >= 0"},
		{"NaN init scale", func(c *UNetConfig) { c.InitScale = math.NaN() }, "InitScale must be a finite number >= 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Tutorial()
			tc.modify(&cfg)
			err := cfg.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestSpaceToDepth checks the patch folding against the index formula
// out[b, i, j, (di*p + dj)*C + c] = x[b, i*p + di, j*p + dj, c], and that DepthToSpace undoes it.
func TestSpaceToDepth(t *testing.T) {
	const B, H, W, C, p = 2, 4, 6, 3, 2
	x := make([]float32, B*H*W*C)
	for i := range x {
		x[i] = float32(i)
	}
	e := graph.MustNewExec(getBackend(t), func(x *graph.Node) []*graph.Node {
		folded := SpaceToDepth(x, p)
		return []*graph.Node{folded, DepthToSpace(folded, p)}
	})
	outs := e.MustCall(tensors.FromFlatDataAndDimensions(x, B, H, W, C))
	if want := shapes.Make(dtypes.Float32, B, H/p, W/p, p*p*C); !outs[0].Shape().Equal(want) {
		t.Fatalf("SpaceToDepth shape %s, want %s", outs[0].Shape(), want)
	}
	folded := tensors.MustCopyFlatData[float32](outs[0])
	at := func(b, i, j, c int) float32 { return x[((b*H+i)*W+j)*C+c] }
	for b := range B {
		for i := range H / p {
			for j := range W / p {
				for di := range p {
					for dj := range p {
						for c := range C {
							got := folded[((b*(H/p)+i)*(W/p)+j)*p*p*C+(di*p+dj)*C+c]
							if want := at(b, i*p+di, j*p+dj, c); got != want {
								t.Fatalf("folded[%d,%d,%d,%d] = %g, want %g", b, i, j, (di*p+dj)*C+c, got, want)
							}
						}
					}
				}
			}
		}
	}
	back := tensors.MustCopyFlatData[float32](outs[1])
	for i := range x {
		if back[i] != x[i] {
			t.Fatalf("DepthToSpace(SpaceToDepth(x))[%d] = %g, want %g", i, back[i], x[i])
		}
	}
}

func randomBatch(rng *rand.Rand, batch, size int) (*tensors.Tensor, *tensors.Tensor) {
	x := make([]float32, batch*size*size)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	ts := make([]int32, batch)
	for i := range ts {
		ts[i] = int32(rng.IntN(200))
	}
	return tensors.FromFlatDataAndDimensions(x, batch, size, size, 1), tensors.FromValue(ts)
}

func TestTinyUNetForward(t *testing.T) {
	b := getBackend(t)
	cfg := Tiny()
	store := model.NewStore()
	store.SetParam(model.ParamInitialSeed, int64(7))
	e := model.MustNewExec(b, store, func(scope *model.Scope, x, ts *graph.Node) *graph.Node {
		return UNet(scope, x, ts, cfg)
	})
	x, ts := randomBatch(rand.New(rand.NewPCG(15, 16)), 4, cfg.ImageSize)
	start := time.Now()
	out := e.MustCall(x, ts)[0]
	t.Logf("Tiny() forward, batch 4 (incl. compilation): %s", time.Since(start))
	if !out.Shape().Equal(x.Shape()) {
		t.Fatalf("output shape %s, want %s", out.Shape(), x.Shape())
	}
	values := tensors.MustCopyFlatData[float32](out)
	mean, sq := 0.0, 0.0
	for _, v := range values {
		mean += float64(v)
		sq += float64(v) * float64(v)
	}
	mean /= float64(len(values))
	std := math.Sqrt(sq/float64(len(values)) - mean*mean)
	t.Logf("initial output mean %.3f, std %.3f (LeCun init; initial MSE to N(0,1) noise ~ 1 + std^2)", mean, std)
	if math.IsNaN(std) || std < 0.1 || std > 10 {
		t.Errorf("initial output std %g not of order 1", std)
	}
}

// TestUNetInitScale checks that UNetConfig.InitScale multiplies every kernel of the U-Net, and nothing else:
// from the same seed, a Tiny U-Net with InitScale 0.25 has exactly 0.25 times the kernels (rank >= 2) of one
// with InitScale 0 (Flax's), and the same biases and normalization scales.
func TestUNetInitScale(t *testing.T) {
	b := getBackend(t)
	x, ts := randomBatch(rand.New(rand.NewPCG(1, 2)), 2, Tiny().ImageSize)
	build := func(scale float64) *model.Store {
		cfg := Tiny()
		cfg.InitScale = scale
		store := model.NewStore()
		store.SetParam(model.ParamInitialSeed, int64(3))
		model.MustNewExec(b, store, func(scope *model.Scope, x, ts *graph.Node) *graph.Node {
			return UNet(scope, x, ts, cfg)
		}).MustCall(x, ts)
		return store
	}
	flax, scaled := build(0), build(0.25)
	kernels := 0
	for v := range flax.IterVariables() {
		if v.DType() != dtypes.Float32 { // The random state.
			continue
		}
		want := tensors.MustCopyFlatData[float32](v.MustValue())
		other := scaled.GetVariable(v.Path())
		if other == nil {
			t.Fatalf("variable %s missing with InitScale 0.25", v.Path())
		}
		got := tensors.MustCopyFlatData[float32](other.MustValue())
		factor := float32(1)
		if v.Shape().Rank() >= 2 {
			factor = 0.25
			kernels++
		}
		for i := range want {
			if d := got[i] - factor*want[i]; d > 1e-6 || d < -1e-6 {
				t.Fatalf("%s[%d] = %g, want %g * %g", v.Path(), i, got[i], factor, want[i])
			}
		}
	}
	if kernels < 20 {
		t.Errorf("only %d kernels checked", kernels)
	}
}

// TestUNetGradients checks the whole U-Net's gradients (all variables and the input) against Float64 finite
// differences, on a 2-level 8x8 configuration with attention at every level and in the middle.
func TestUNetGradients(t *testing.T) {
	if testing.Short() {
		t.Skip("whole-model gradient check (~10 s)")
	}
	b := getBackend(t)
	cfg := UNetConfig{ImageSize: 8, BaseWidth: 4, WidthMults: []int{1, 2}, AttentionResolutions: []int{8, 4},
		MiddleAttention: true, Groups: 2, Heads: 2}
	rng := rand.New(rand.NewPCG(17, 18))
	x := randNHWC(rng, 2, 8, 8, 1)
	store := model.NewStore()
	store.SetParam(model.ParamInitialSeed, int64(3))
	results, err := gradcheck.Variables(b, store, func(scope *model.Scope, in []*graph.Node) *graph.Node {
		return UNet(scope, in[0], in[1], cfg)
	}, []*tensors.Tensor{x.tensor(), tensors.FromValue([]int32{5, 120})}, true,
		gradcheck.Options{Directions: 1, Coordinates: 2})
	// Through ~50 layers, Float64 finite differences have relative noise ~1e-6: a real error is >> 1e-3.
	checkResultsTol(t, results, err, 1e-5)
	worst := gradcheck.Result{}
	for _, r := range results {
		if r.MaxRelErr >= worst.MaxRelErr {
			worst = r
		}
	}
	t.Logf("%d tensors checked; worst: %s", len(results), worst)
}

// BenchmarkUNetStep measures one forward+backward step (MSE loss and all variable gradients) of the CPU()
// U-Net at batch 8 (CPU_im2col: with the flat convolutions off) and of Tiny() at batch 8:
// go test ./layers/ -run XXX -bench UNetStep -benchtime 3x.
func BenchmarkUNetStep(b *testing.B) {
	for _, tc := range []struct {
		name     string
		cfg      UNetConfig
		flatFrom int // flatMinPositions
	}{{"CPU", CPU(), flatMinPositions}, {"CPU_im2col", CPU(), math.MaxInt}, {"Tiny", Tiny(), flatMinPositions}} {
		b.Run(tc.name, func(b *testing.B) {
			setFlatMinPositions(b, tc.flatFrom)
			be, err := backend.New()
			if err != nil {
				b.Fatal(err)
			}
			store := model.NewStore()
			e := model.MustNewExec(be, store, func(scope *model.Scope, x, ts *graph.Node) []*graph.Node {
				out := UNet(scope, x, ts, tc.cfg)
				diff := graph.Sub(out, x)
				loss := graph.ReduceAllMean(graph.Mul(diff, diff))
				return append([]*graph.Node{loss}, scope.BuildTrainableVariablesGradientsGraph(loss)...)
			})
			x, ts := randomBatch(rand.New(rand.NewPCG(19, 20)), 8, tc.cfg.ImageSize)
			start := time.Now()
			outs := e.MustCall(x, ts)
			b.Logf("first call (compile + run): %s, loss %v, %d gradients", time.Since(start), outs[0].Value(), len(outs)-1)
			b.ResetTimer()
			for b.Loop() {
				e.MustCall(x, ts)
			}
		})
	}
}

// ExampleUNet builds the Tiny() U-Net and predicts the noise of a batch of two 32x32 images.
func ExampleUNet() {
	b, err := backend.New()
	if err != nil {
		panic(err)
	}
	cfg := Tiny()
	store := model.NewStore()
	predict := model.MustNewExec(b, store, func(scope *model.Scope, x, t *graph.Node) *graph.Node {
		return UNet(scope, x, t, cfg)
	})
	noisy := tensors.FromShape(shapes.Make(dtypes.Float32, 2, cfg.ImageSize, cfg.ImageSize, 1))
	timesteps := tensors.FromValue([]int32{10, 150})
	noise := predict.MustCall(noisy, timesteps)[0]
	fmt.Println(noise.Shape())
	fmt.Println(NumTrainableParameters(store))
	// Output:
	// (Float32)[2, 32, 32, 1]
	// 52857
}
