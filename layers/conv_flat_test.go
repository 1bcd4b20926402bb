package layers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/core/graph"

	"github.com/godiffusion/godiffusion/internal/gradcheck"
)

// flatCases are convolutions computed by conv2DFlat, checked against the float64 reference (forward) and
// finite differences (gradients of x, kernel and bias): 3x3, 5x5 and 7x7, non-square maps and kernels,
// one input channel (the stem), and a map narrower than the kernel.
var flatCases = []struct {
	name                   string
	batch, h, w, cin, cout int
	kh, kw                 int
}{
	{"3x3 16->16 on 16x16", 2, 16, 16, 16, 16, 3, 3},
	{"3x3 2->3 on 5x7", 3, 5, 7, 2, 3, 3, 3},
	{"5x3 3->2 on 6x4", 2, 6, 4, 3, 2, 5, 3},
	{"7x7 1->4 on 8x8 (stem)", 2, 8, 8, 1, 4, 7, 7},
	{"5x5 2->2 on 3x3 (map smaller than kernel)", 2, 3, 3, 2, 2, 5, 5},
}

// TestConv2DFlat checks conv2DFlat on flatCases: the forward pass against the float64 reference, without
// and with bias, and the gradients of x, kernel and bias against finite differences.
func TestConv2DFlat(t *testing.T) {
	b := getBackend(t)
	rng := rand.New(rand.NewPCG(11, 12))
	for _, tc := range flatCases {
		t.Run(tc.name, func(t *testing.T) {
			x := randNHWC(rng, tc.batch, tc.h, tc.w, tc.cin)
			k := randNHWC(rng, tc.kh, tc.kw, tc.cin, tc.cout)
			bias := randNHWC(rng, 1, 1, 1, tc.cout)
			ph, pw := (tc.kh-1)/2, (tc.kw-1)/2
			want := refConv(x, k, 1, ph, ph, pw, pw)
			e := graph.MustNewExec(b, func(x, k *graph.Node) *graph.Node { return conv2DFlat(x, k, nil) })
			if d := maxAbsDiff(t, e.MustCall(x.tensor(), k.tensor())[0], want); d > 1e-10 {
				t.Errorf("without bias: float64 max abs diff %g", d)
			}
			for i := range want.data {
				want.data[i] += bias.data[i%tc.cout]
			}
			withBias := func(in []*graph.Node) *graph.Node {
				return conv2DFlat(in[0], in[1], graph.Reshape(in[2], tc.cout))
			}
			inputs := []*tensorsT{x.tensor(), k.tensor(), bias.tensor()}
			e = graph.MustNewExec(b, withBias)
			if d := maxAbsDiff(t, e.MustCall(inputs[0], inputs[1], inputs[2])[0], want); d > 1e-10 {
				t.Errorf("with bias: float64 max abs diff %g", d)
			}
			results, err := gradcheck.Inputs(b, withBias, inputs, gradcheck.Options{Coordinates: 16})
			checkResults(t, results, err)
		})
	}
}

// TestConv2DFlatChosen checks which convolutions take the flat form: stride 1, odd kernels with "SAME"
// padding, maps of at least flatMinPositions positions.
func TestConv2DFlatChosen(t *testing.T) {
	for _, tc := range []struct {
		h, w, kh, kw, stride int
		low, high            [2]int
		want                 bool
	}{
		{32, 32, 3, 3, 1, [2]int{1, 1}, [2]int{1, 1}, true},
		{16, 16, 3, 3, 1, [2]int{1, 1}, [2]int{1, 1}, true},
		{32, 32, 7, 7, 1, [2]int{3, 3}, [2]int{3, 3}, true},
		{8, 8, 3, 3, 1, [2]int{1, 1}, [2]int{1, 1}, false},   // small map: im2col
		{32, 32, 1, 1, 1, [2]int{0, 0}, [2]int{0, 0}, false}, // 1x1: a plain product
		{32, 32, 4, 4, 2, [2]int{1, 1}, [2]int{1, 1}, false}, // stride 2
		{32, 32, 3, 3, 1, [2]int{0, 0}, [2]int{0, 0}, false}, // VALID
		{32, 32, 4, 4, 1, [2]int{1, 2}, [2]int{2, 1}, false}, // even kernel
	} {
		if got := conv2DFlatApplies(tc.h, tc.w, tc.kh, tc.kw, tc.stride, tc.low, tc.high); got != tc.want {
			t.Errorf("conv2DFlatApplies(%+v) = %v, want %v", tc, got, tc.want)
		}
	}
}

// BenchmarkConv2D times one stride-1 "SAME" convolution with both gradients (input and kernel, bias
// folded), float32, at the U-Net's feature map sizes for batch 8 (one shard of the default batch 16),
// computed as an im2col (conv2DStride1) and in the flat layout (conv2DFlat):
// go test ./layers -run '^$' -bench Conv2D -benchtime 20x.
func BenchmarkConv2D(b *testing.B) {
	be := getBackend(b)
	for _, tc := range []struct{ size, cin, cout, k int }{
		{32, 16, 16, 3}, {32, 32, 16, 3}, {32, 1, 10, 7}, {16, 32, 32, 3}, {16, 64, 32, 3}, {8, 64, 64, 3},
	} {
		const batch = 8
		rng := rand.New(rand.NewPCG(1, 2))
		x := randNHWC(rng, batch, tc.size, tc.size, tc.cin).tensor32()
		v := randNHWC(rng, batch, tc.size, tc.size, tc.cout).tensor32()
		k := randNHWC(rng, tc.k, tc.k, tc.cin, tc.cout).tensor32()
		bias := randNHWC(rng, 1, 1, 1, tc.cout).tensor32()
		p := (tc.k - 1) / 2
		for _, impl := range []struct {
			name string
			conv func(x, k, bias *graph.Node) *graph.Node
		}{
			{"im2col", func(x, k, bias *graph.Node) *graph.Node {
				return conv2DStride1(x, k, bias, [2]int{p, p}, [2]int{p, p})
			}},
			{"flat", conv2DFlat},
			{"native", func(x, k, bias *graph.Node) *graph.Node {
				SetFormulation(x.Graph(), FormulationNative)
				return stride1Conv(x, k, bias, [2]int{p, p}, [2]int{p, p})
			}},
		} {
			name := fmt.Sprintf("%dx%dx%d->%d/k=%d/%s", tc.size, tc.size, tc.cin, tc.cout, tc.k, impl.name)
			b.Run(name, func(b *testing.B) {
				e := graph.MustNewExec(be, func(x, v, k, bias *graph.Node) []*graph.Node {
					out := impl.conv(x, k, graph.Reshape(bias, tc.cout))
					return graph.Gradient(graph.ReduceAllSum(graph.Mul(out, v)), x, k, bias)
				})
				benchmarkExec(b, e, x, v, k, bias)
				b.ReportMetric(float64(batch)*float64(b.N)/b.Elapsed().Seconds(), "img/s")
			})
		}
	}
}

// BenchmarkConvTranspose2D times the 4x4 stride-2 transposed convolution (the U-Net's upsampling) with
// both gradients at batch 8, computed with an im2col and, from 16x16 on, with the flat layout (conv2DFlat):
// go test ./layers -run '^$' -bench ConvTranspose2D -benchtime 20x.
func BenchmarkConvTranspose2D(b *testing.B) {
	be := getBackend(b)
	for _, tc := range []struct{ size, cin, cout int }{{4, 128, 128}, {16, 32, 32}, {16, 64, 32}} {
		const batch = 8
		rng := rand.New(rand.NewPCG(3, 4))
		x := randNHWC(rng, batch, tc.size, tc.size, tc.cin).tensor32()
		v := randNHWC(rng, batch, 2*tc.size, 2*tc.size, tc.cout).tensor32()
		k := randNHWC(rng, 4, 4, tc.cin, tc.cout).tensor32()
		for _, impl := range []struct {
			name     string
			flatFrom int // flatMinPositions
		}{{"im2col", math.MaxInt}, {"flat", flatMinPositions}} {
			if impl.name == "flat" && tc.size*tc.size < flatMinPositions {
				continue // Below flatMinPositions both are the im2col.
			}
			b.Run(fmt.Sprintf("%dx%dx%d->%d/%s", tc.size, tc.size, tc.cin, tc.cout, impl.name), func(b *testing.B) {
				setFlatMinPositions(b, impl.flatFrom)
				e := graph.MustNewExec(be, func(x, v, k *graph.Node) []*graph.Node {
					out := ConvTranspose2D(x, k, 2, true)
					return graph.Gradient(graph.ReduceAllSum(graph.Mul(out, v)), x, k)
				})
				benchmarkExec(b, e, x, v, k)
			})
		}
	}
}

// benchmarkExec runs e on inputs once (compiling it), then in the benchmark loop, releasing the outputs.
func benchmarkExec(b *testing.B, e *graph.Exec, inputs ...any) {
	run := func() {
		for _, t := range e.MustCall(inputs...) {
			t.FinalizeAll()
		}
	}
	run()
	for b.Loop() {
		run()
	}
}

// setFlatMinPositions sets flatMinPositions for the rest of the benchmark (or test) tb, to compare the flat
// convolutions with the im2col; tb's cleanup restores it.
func setFlatMinPositions(tb testing.TB, v int) {
	old := flatMinPositions
	flatMinPositions = v
	tb.Cleanup(func() { flatMinPositions = old })
}
