package layers

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/internal/gradcheck"
)

// TestPreNormBlocksStartAsSkip checks that every pre-activation block starts as its skip connection (the
// identity, or the 1x1 "skip" convolution when the width changes), and a PreNorm U-Net as zero.
func TestPreNormBlocksStartAsSkip(t *testing.T) {
	b := getBackend(t)
	rng := rand.New(rand.NewPCG(31, 32))
	x := randNHWC(rng, 2, 4, 4, 8)
	temb := tensors.FromFlatDataAndDimensions(randNHWC(rng, 1, 1, 2, 12).data, 2, 12)
	identity := func(*model.Store) *nhwc { return x }
	for _, tc := range []struct {
		name string
		fn   func(scope *model.Scope, x, temb *graph.Node) *graph.Node
		want func(store *model.Store) *nhwc
	}{
		{"PreNormResnetBlock same width", func(s *model.Scope, x, temb *graph.Node) *graph.Node {
			return PreNormResnetBlock(s, x, temb, 8, 4)
		}, identity},
		{"PreNormResnetBlock 8 -> 6 channels", func(s *model.Scope, x, temb *graph.Node) *graph.Node {
			return PreNormResnetBlock(s, x, temb, 6, 4) // GroupNorm of the 6 outputs with gcd(4, 6) = 2 groups.
		}, func(store *model.Store) *nhwc { // The skip convolution's x·W + bias, computed here.
			w := tensors.MustCopyFlatData[float64](store.GetVariable("/skip/conv/weights").MustValue()) // [1, 1, 8, 6]
			bias := tensors.MustCopyFlatData[float64](store.GetVariable("/skip/conv/biases").MustValue())
			want := newNHWC(2, 4, 4, 6)
			for p := range 2 * 4 * 4 {
				for o := range 6 {
					s := bias[o]
					for c := range 8 {
						s += x.data[p*8+c] * w[c*6+o]
					}
					want.data[p*6+o] = s
				}
			}
			return want
		}},
		{"PreNormAttentionBlock", func(s *model.Scope, x, _ *graph.Node) *graph.Node {
			return PreNormAttentionBlock(s, x, 2, 4)
		}, identity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := model.NewStore()
			e := model.MustNewExec(b, store, tc.fn)
			got := e.MustCall(x.tensor(), temb)[0]
			if d := maxAbsDiff(t, got, tc.want(store)); d > 1e-12 {
				t.Errorf("max abs diff from the skip connection %g", d)
			}
		})
	}

	t.Run("UNet", func(t *testing.T) {
		cfg := Tiny()
		cfg.PreNorm = true
		xs := randNHWC(rng, 2, cfg.ImageSize, cfg.ImageSize, 1)
		e := model.MustNewExec(b, model.NewStore(), func(s *model.Scope, x, t *graph.Node) *graph.Node {
			return UNet(s, x, t, cfg)
		})
		got := e.MustCall(xs.tensor(), []int32{0, 199})[0]
		if d := maxAbsDiff(t, got, newNHWC(2, cfg.ImageSize, cfg.ImageSize, 1)); d != 0 {
			t.Errorf("initial output max abs %g, want exactly 0", d)
		}
	})
}

// TestPreNormGradients checks the pre-activation blocks' gradients with Float64 central finite differences,
// after replacing their zero initial kernels by random values (with zeros, the gradients of everything
// before a zero kernel vanish and would not be checked).
func TestPreNormGradients(t *testing.T) {
	b := getBackend(t)
	rng := rand.New(rand.NewPCG(33, 34))
	x := randNHWC(rng, 2, 4, 4, 8)
	tEmb := randNHWC(rng, 1, 1, 2, 12) // [2, 12] after reshape.
	for _, tc := range []struct {
		name   string
		fn     func(scope *model.Scope, in []*graph.Node) *graph.Node
		inputs []*tensors.Tensor
	}{
		{"PreNormResnetBlock 8 -> 4", func(s *model.Scope, in []*graph.Node) *graph.Node {
			return PreNormResnetBlock(s, in[0], graph.Reshape(in[1], 2, 12), 4, 2)
		}, []*tensors.Tensor{x.tensor(), tEmb.tensor()}},
		{"PreNormResnetBlock 8 -> 8", func(s *model.Scope, in []*graph.Node) *graph.Node {
			return PreNormResnetBlock(s, in[0], graph.Reshape(in[1], 2, 12), 8, 4)
		}, []*tensors.Tensor{x.tensor(), tEmb.tensor()}},
		{"PreNormAttentionBlock", func(s *model.Scope, in []*graph.Node) *graph.Node {
			return PreNormAttentionBlock(s, in[0], 2, 4)
		}, []*tensors.Tensor{x.tensor()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := model.NewStore()
			store.SetParam(model.ParamInitialSeed, int64(42))
			args := make([]any, len(tc.inputs))
			for i, in := range tc.inputs {
				args[i] = in
			}
			model.MustNewExec(b, store, tc.fn).MustCall(args...) // Creates and initializes the variables.
			randomized := 0
			for v := range store.IterVariables() {
				if !v.Trainable || v.Shape().Rank() < 2 || v.DType() != dtypes.Float64 {
					continue
				}
				values := tensors.MustCopyFlatData[float64](v.MustValue())
				if allZero(values) {
					for i := range values {
						values[i] = 0.3 * rng.NormFloat64()
					}
					v.MustSetValue(tensors.FromFlatDataAndDimensions(values, v.Shape().Dimensions...))
					randomized++
				}
			}
			if randomized == 0 {
				t.Fatalf("no zero-initialized kernel found")
			}
			results, err := gradcheck.Variables(b, store, tc.fn, tc.inputs, true, gradcheck.Options{Coordinates: 6})
			checkResults(t, results, err)
		})
	}
}

func allZero(values []float64) bool {
	for _, v := range values {
		if v != 0 {
			return false
		}
	}
	return true
}
