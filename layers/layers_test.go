package layers

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/internal/gradcheck"
)

func TestGroupNormForward(t *testing.T) {
	b := getBackend(t)
	rng := rand.New(rand.NewPCG(11, 12))
	for _, tc := range []struct {
		name               string
		h, w, c, groups    int
		scaleBiasTolerance float64
	}{
		{"8 groups of 4", 3, 4, 32, 8, 1e-10},
		{"1 group (layer norm)", 2, 2, 6, 1, 1e-10},
		{"groups == channels", 4, 4, 4, 4, 1e-10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := randNHWC(rng, 2, tc.h, tc.w, tc.c)
			for i := range x.data {
				x.data[i] = 3*x.data[i] + 5 // Non-zero mean, non-unit variance.
			}
			want := refGroupNorm(x, tc.groups, 1e-6)
			store := model.NewStore()
			e := model.MustNewExec(b, store, func(scope *model.Scope, x *graph.Node) *graph.Node {
				return GroupNorm(scope, x, tc.groups)
			})
			if d := maxAbsDiff(t, e.MustCall(x.tensor())[0], want); d > tc.scaleBiasTolerance {
				t.Errorf("float64 max abs diff %g", d)
			}
			if got := NumTrainableParameters(store); got != 2*tc.c {
				t.Errorf("parameters = %d, want %d", got, 2*tc.c)
			}
		})
	}
}

func TestGroupNormPanicsOnIndivisibleChannels(t *testing.T) {
	b := getBackend(t)
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(toString(r), "divisible by groups") {
			t.Errorf("expected a panic about divisibility, got %v", r)
		}
	}()
	e := model.MustNewExec(b, model.NewStore(), func(scope *model.Scope, x *graph.Node) *graph.Node {
		return GroupNorm(scope, x, 4)
	})
	e.MustCall(newNHWC(1, 2, 2, 6).tensor())
}

func toString(r any) string {
	if e, ok := r.(error); ok {
		return e.Error()
	}
	if s, ok := r.(string); ok {
		return s
	}
	return ""
}

func TestSinusoidalEmbedding(t *testing.T) {
	b := getBackend(t)
	ts := []int32{0, 1, 7, 199}
	const dim = 32
	out := graph.MustExecOnce(b, func(t *graph.Node) *graph.Node { return SinusoidalEmbedding(t, dim) }, ts)
	if got := out.Shape().Dimensions; len(got) != 2 || got[0] != len(ts) || got[1] != dim {
		t.Fatalf("shape %s, want [%d, %d]", out.Shape(), len(ts), dim)
	}
	values := tensors.MustCopyFlatData[float32](out)
	half := dim / 2
	for bi, tv := range ts {
		for i := range half {
			arg := float64(tv) * math.Exp(-float64(i)*math.Log(10000)/float64(half-1))
			if d := math.Abs(float64(values[bi*dim+i]) - math.Sin(arg)); d > 1e-4 {
				t.Errorf("t=%d sin[%d]: got %g want %g", tv, i, values[bi*dim+i], math.Sin(arg))
			}
			if d := math.Abs(float64(values[bi*dim+half+i]) - math.Cos(arg)); d > 1e-4 {
				t.Errorf("t=%d cos[%d]: got %g want %g", tv, i, values[bi*dim+half+i], math.Cos(arg))
			}
		}
	}
}

// TestLayerGradients checks, with Float64 central finite differences, the gradients with respect to the
// input and to every variable of each layer.
func TestLayerGradients(t *testing.T) {
	b := getBackend(t)
	rng := rand.New(rand.NewPCG(13, 14))
	x := randNHWC(rng, 2, 4, 4, 8)
	tEmb := randNHWC(rng, 1, 1, 2, 12) // [2, 12] after reshape.
	timesteps := tensors.FromValue([]float64{3, 150})
	for _, tc := range []struct {
		name   string
		fn     func(scope *model.Scope, in []*graph.Node) *graph.Node
		inputs []*tensors.Tensor
	}{
		{"Conv 1x1", func(s *model.Scope, in []*graph.Node) *graph.Node {
			return Conv(s, in[0]).Channels(3).KernelSize(1).Done()
		}, []*tensors.Tensor{x.tensor()}},
		{"Conv 3x3 same", func(s *model.Scope, in []*graph.Node) *graph.Node {
			return Conv(s, in[0]).Channels(3).KernelSize(3).Done()
		}, []*tensors.Tensor{x.tensor()}},
		{"Conv 7x7 pad 3", func(s *model.Scope, in []*graph.Node) *graph.Node {
			return Conv(s, in[0]).Channels(2).KernelSize(7).Padding(3).Done()
		}, []*tensors.Tensor{x.tensor()}},
		{"Conv 4x4 stride 2 same", func(s *model.Scope, in []*graph.Node) *graph.Node {
			return Conv(s, in[0]).Channels(3).KernelSize(4).Stride(2).Done()
		}, []*tensors.Tensor{x.tensor()}},
		{"ConvTranspose 4x4 stride 2", func(s *model.Scope, in []*graph.Node) *graph.Node {
			return ConvTranspose(s, in[0]).Channels(3).KernelSize(4).Stride(2).Done()
		}, []*tensors.Tensor{x.tensor()}},
		{"GroupNorm", func(s *model.Scope, in []*graph.Node) *graph.Node {
			return GroupNorm(s, in[0], 4)
		}, []*tensors.Tensor{x.tensor()}},
		{"Dense", func(s *model.Scope, in []*graph.Node) *graph.Node {
			return Dense(s, in[0], 5, true)
		}, []*tensors.Tensor{x.tensor()}},
		{"Attention", func(s *model.Scope, in []*graph.Node) *graph.Node {
			return Attention(s, in[0], 2)
		}, []*tensors.Tensor{x.tensor()}},
		{"AttentionBlock", func(s *model.Scope, in []*graph.Node) *graph.Node {
			return AttentionBlock(s, in[0], 4, 2)
		}, []*tensors.Tensor{x.tensor()}},
		{"TimeEmbedding MLP", func(s *model.Scope, in []*graph.Node) *graph.Node {
			return TimeEmbedding(s, in[0], 8)
		}, []*tensors.Tensor{timesteps}},
		{"ResnetBlock", func(s *model.Scope, in []*graph.Node) *graph.Node {
			return ResnetBlock(s, in[0], graph.Reshape(in[1], 2, 12), 4, 2)
		}, []*tensors.Tensor{x.tensor(), tEmb.tensor()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := model.NewStore()
			store.SetParam(model.ParamInitialSeed, int64(42))
			results, err := gradcheck.Variables(b, store, tc.fn, tc.inputs, true, gradcheck.Options{Coordinates: 6})
			checkResults(t, results, err)
		})
	}
}

// TestAttentionForward compares Attention with a naive loop implementation of the tutorial's code (qkv
// reshaped to [batch, n, 3, heads, headDim], softmax(q·kᵀ·headDim^-0.5)·v, heads concatenated, projected).
func TestAttentionForward(t *testing.T) {
	b := getBackend(t)
	rng := rand.New(rand.NewPCG(21, 22))
	const batch, h, w, c, heads = 2, 2, 3, 4, 2
	x := randNHWC(rng, batch, h, w, c)
	store := model.NewStore()
	e := model.MustNewExec(b, store, func(scope *model.Scope, x *graph.Node) *graph.Node {
		return Attention(scope, x, heads)
	})
	got := e.MustCall(x.tensor())[0]
	value := func(path string) []float64 {
		v := store.GetVariable(path)
		if v == nil {
			t.Fatalf("variable %q not found", path)
		}
		return tensors.MustCopyFlatData[float64](v.MustValue())
	}
	wqkv := value("/qkv/dense/weights") // [c, 3c]
	wout := value("/out/dense/weights") // [c, c]
	bout := value("/out/dense/biases")  // [c]
	n, hd := h*w, c/heads
	want := newNHWC(batch, h, w, c)
	for bi := range batch {
		qkv := make([][]float64, n) // [n][3c]
		for i := range n {
			qkv[i] = make([]float64, 3*c)
			for o := range 3 * c {
				for k := range c {
					qkv[i][o] += x.data[(bi*n+i)*c+k] * wqkv[k*3*c+o]
				}
			}
		}
		// Index of (which in {q,k,v}, head, d) in the 3c features: reshape (3, heads, hd).
		at := func(i, which, head, d int) float64 { return qkv[i][which*c+head*hd+d] }
		concat := make([][]float64, n)
		for i := range n {
			concat[i] = make([]float64, c)
		}
		for head := range heads {
			for i := range n {
				logits := make([]float64, n)
				maxLogit := math.Inf(-1)
				for j := range n {
					for d := range hd {
						logits[j] += at(i, 0, head, d) * at(j, 1, head, d)
					}
					logits[j] /= math.Sqrt(float64(hd))
					maxLogit = max(maxLogit, logits[j])
				}
				sum := 0.0
				for j := range n {
					logits[j] = math.Exp(logits[j] - maxLogit)
					sum += logits[j]
				}
				for j := range n {
					for d := range hd {
						concat[i][head*hd+d] += logits[j] / sum * at(j, 2, head, d)
					}
				}
			}
		}
		for i := range n {
			for o := range c {
				s := bout[o]
				for k := range c {
					s += concat[i][k] * wout[k*c+o]
				}
				want.data[(bi*n+i)*c+o] = s
			}
		}
	}
	// 1e-7, not float64 rounding: ONNX Runtime's float64 softmax differs from the host's by ~1e-8.
	if d := maxAbsDiff(t, got, want); d > 1e-7 {
		t.Errorf("max abs diff %g", d)
	}
	if got, want := NumTrainableParameters(store), 3*c*c+c*c+c; got != want {
		t.Errorf("parameters = %d, want %d", got, want)
	}
}

// TestInitializers checks the statistics of LecunNormal (truncated, variance 1/fan_in) and XavierUniform,
// with Flax's scale and with ParamKernelInitScale set on a parent scope.
func TestInitializers(t *testing.T) {
	b := getBackend(t)
	stats := func(v []float32) (mean, std, maxAbs float64) {
		for _, x := range v {
			mean += float64(x)
			maxAbs = max(maxAbs, math.Abs(float64(x)))
		}
		mean /= float64(len(v))
		for _, x := range v {
			std += (float64(x) - mean) * (float64(x) - mean)
		}
		return mean, math.Sqrt(std / float64(len(v))), maxAbs
	}
	for _, tc := range []struct{ param, want float64 }{{0, 1}, {0.1, 0.1}} { // param 0: not set.
		store := model.NewStore()
		store.SetParam(model.ParamInitialSeed, int64(5))
		if tc.param > 0 {
			store.RootScope().SetParam(ParamKernelInitScale, tc.param)
		}
		scope := store.RootScope().In("model").In("conv")
		out := model.MustExecOnceN(b, store, func(s *model.Scope, g *graph.Graph) []*graph.Node {
			shape := shapesMake(3, 3, 64, 32) // fan_in 576, fan_out 288
			return []*graph.Node{LecunNormal(scope)(g, shape), XavierUniform(scope)(g, shape)}
		})
		mean, std, maxAbs := stats(tensors.MustCopyFlatData[float32](out[0]))
		wantStd := tc.want * math.Sqrt(1.0/576)
		if math.Abs(mean) > 0.05*wantStd || math.Abs(std/wantStd-1) > 0.03 || maxAbs > 2*wantStd/0.8796+1e-6 {
			t.Errorf("scale %g: LecunNormal: mean %g, std %g (want %g), max |x| %g (want <= %g)", tc.param, mean, std,
				wantStd, maxAbs, 2*wantStd/0.8796)
		}
		limit := tc.want * math.Sqrt(6.0/(576+288))
		mean, std, maxAbs = stats(tensors.MustCopyFlatData[float32](out[1]))
		if math.Abs(mean) > 0.05*limit || math.Abs(std/(limit/math.Sqrt(3))-1) > 0.03 || maxAbs > limit*(1+1e-6) {
			t.Errorf("scale %g: XavierUniform: mean %g, std %g (want %g), max |x| %g (want <= %g)", tc.param, mean, std,
				limit/math.Sqrt(3), maxAbs, limit)
		}
	}
}

// TestAttentionChunked forces attentionCore to split the (example, head) pairs into chunks (recomputing
// the weights in the backward pass) and checks the output against a single chunk and the gradients
// against finite differences.
func TestAttentionChunked(t *testing.T) {
	b := getBackend(t)
	rng := rand.New(rand.NewPCG(31, 32))
	x := randNHWC(rng, 3, 2, 3, 8) // 3 examples x 2 heads = 6 pairs of 6 positions.
	fn := func(s *model.Scope, in []*graph.Node) *graph.Node { return Attention(s, in[0], 2) }
	run := func(chunkBytes int) *tensors.Tensor {
		defer func(old int) { AttentionChunkBytes = old }(AttentionChunkBytes)
		AttentionChunkBytes = chunkBytes
		store := model.NewStore()
		store.SetParam(model.ParamInitialSeed, int64(7))
		e := model.MustNewExec(b, store, func(scope *model.Scope, x *graph.Node) *graph.Node {
			return fn(scope, []*graph.Node{x})
		})
		return e.MustCall(x.tensor())[0]
	}
	// 6x6 float64 weights are 288 bytes per pair: 600 bytes gives chunks of 2 pairs, 300 of 1.
	whole := tensors.MustCopyFlatData[float64](run(1 << 20))
	for _, chunkBytes := range []int{600, 300} {
		got := tensors.MustCopyFlatData[float64](run(chunkBytes))
		worst := 0.0
		for i := range got {
			worst = max(worst, math.Abs(got[i]-whole[i]))
		}
		if worst > 1e-12 {
			t.Errorf("chunks of %d bytes: max abs diff from one chunk %g", chunkBytes, worst)
		}
	}
	defer func(old int) { AttentionChunkBytes = old }(AttentionChunkBytes)
	AttentionChunkBytes = 600
	store := model.NewStore()
	store.SetParam(model.ParamInitialSeed, int64(42))
	results, err := gradcheck.Variables(b, store, fn, []*tensors.Tensor{x.tensor()}, true, gradcheck.Options{Coordinates: 6})
	checkResults(t, results, err)
}
