package layers

import (
	"cmp"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/graph"

	"github.com/godiffusion/godiffusion/internal/gradcheck"
)

func TestConv2DForward(t *testing.T) {
	b := getBackend(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name                     string
		size, cin, cout, k, s    int
		top, bottom, left, right int
		wantSize                 int
	}{
		{"1x1", 5, 3, 4, 1, 1, 0, 0, 0, 0, 5},
		{"3x3 same", 6, 2, 3, 3, 1, 1, 1, 1, 1, 6},
		{"7x7 pad 3", 8, 1, 4, 7, 1, 3, 3, 3, 3, 8},
		{"4x4 stride 2 pad 1 (32->16)", 32, 2, 3, 4, 2, 1, 1, 1, 1, 16},
		{"3x3 valid", 6, 2, 2, 3, 1, 0, 0, 0, 0, 4},
		{"asymmetric pad", 7, 2, 2, 4, 1, 1, 2, 2, 1, 7},
		{"3x3 16->16 on 48x48 (flat layout)", 48, 16, 16, 3, 1, 1, 1, 1, 1, 48},
		{"3x3 valid 16->16 on 48x48 (im2col, patchesTimesKernel swaps)", 48, 16, 16, 3, 1, 0, 0, 0, 0, 46},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := randNHWC(rng, 2, tc.size, tc.size, tc.cin)
			k := randNHWC(rng, tc.k, tc.k, tc.cin, tc.cout)
			want := refConv(x, k, tc.s, tc.top, tc.bottom, tc.left, tc.right)
			if want.d[1] != tc.wantSize {
				t.Fatalf("reference size %d, want %d", want.d[1], tc.wantSize)
			}
			e := graph.MustNewExec(b, func(x, k *graph.Node) *graph.Node {
				return Conv2D(x, k, tc.s, [2]int{tc.top, tc.left}, [2]int{tc.bottom, tc.right})
			})
			if d := maxAbsDiff(t, e.MustCall(x.tensor(), k.tensor())[0], want); d > 1e-10 {
				t.Errorf("float64 max abs diff %g", d)
			}
			if d := maxAbsDiff(t, e.MustCall(x.tensor32(), k.tensor32())[0], want); d > 1e-4 {
				t.Errorf("float32 max abs diff %g", d)
			}
		})
	}
}

func TestSamePadding(t *testing.T) {
	for _, tc := range []struct{ size, k, s, low, high int }{
		{32, 4, 2, 1, 1}, {32, 3, 1, 1, 1}, {32, 7, 1, 3, 3}, {32, 1, 1, 0, 0}, {8, 4, 1, 1, 2}, {7, 3, 2, 1, 1},
	} {
		low, high := SamePadding(tc.size, tc.k, tc.s)
		if low != tc.low || high != tc.high {
			t.Errorf("SamePadding(%d, %d, %d) = (%d, %d), want (%d, %d)", tc.size, tc.k, tc.s, low, high, tc.low, tc.high)
		}
	}
}

func TestConvTranspose2DForward(t *testing.T) {
	b := getBackend(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name            string
		size, cin, cout int
		k, s            int
		same            bool
		wantSize        int
	}{
		{"4x4 stride 2 same (16->32)", 16, 3, 2, 4, 2, true, 32},
		{"4x4 stride 2 same small", 3, 2, 2, 4, 2, true, 6},
		{"3x3 stride 2 same (generic)", 5, 2, 3, 3, 2, true, 10},
		{"4x4 stride 2 valid (generic)", 4, 2, 2, 4, 2, false, 10},
		{"3x3 stride 1 same (generic)", 5, 2, 2, 3, 1, true, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := randNHWC(rng, 2, tc.size, tc.size, tc.cin)
			k := randNHWC(rng, tc.k, tc.k, tc.cin, tc.cout)
			low, _ := ConvTransposePadding(tc.k, tc.s, tc.same)
			want := refConvTranspose(x, k, tc.s, low, tc.wantSize, tc.wantSize)
			e := graph.MustNewExec(b, func(x, k *graph.Node) *graph.Node {
				return ConvTranspose2D(x, k, tc.s, tc.same)
			})
			if d := maxAbsDiff(t, e.MustCall(x.tensor(), k.tensor())[0], want); d > 1e-10 {
				t.Errorf("float64 max abs diff %g", d)
			}
			if d := maxAbsDiff(t, e.MustCall(x.tensor32(), k.tensor32())[0], want); d > 1e-4 {
				t.Errorf("float32 max abs diff %g", d)
			}
		})
	}
	// The sub-pixel fast path must agree with the generic dilate-and-convolve path.
	x := randNHWC(rng, 1, 4, 5, 3)
	k := randNHWC(rng, 4, 4, 3, 2)
	e := graph.MustNewExec(b, func(x, k *graph.Node) (*graph.Node, *graph.Node) {
		generic := Conv2D(DilateSpatial(x, 2), k, 1, [2]int{2, 2}, [2]int{2, 2})
		return ConvTranspose2D(x, k, 2, true), generic
	})
	outs := e.MustCall(x.tensor(), k.tensor())
	if !outs[0].Shape().Equal(outs[1].Shape()) {
		t.Fatalf("fast %s vs generic %s", outs[0].Shape(), outs[1].Shape())
	}
	want := refConvTranspose(x, k, 2, 2, 8, 10)
	if d := maxAbsDiff(t, outs[0], want); d > 1e-10 {
		t.Errorf("non-square fast path: max abs diff %g", d)
	}
	if d := maxAbsDiff(t, outs[1], want); d > 1e-10 {
		t.Errorf("non-square generic path: max abs diff %g", d)
	}
}

// gradTolerance is the maximum relative error accepted for Float64 finite-difference gradient checks.
const gradTolerance = 1e-6

func checkResults(t *testing.T, results []gradcheck.Result, err error) {
	t.Helper()
	checkResultsTol(t, results, err, gradTolerance)
}

func checkResultsTol(t *testing.T, results []gradcheck.Result, err error, tolerance float64) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	worst, summary := gradcheck.MaxRelErr(results)
	if worst > tolerance {
		t.Errorf("gradient check failed (max rel err %.3g > %g):\n%s", worst, tolerance, summary)
	} else {
		t.Logf("max rel err %.3g", worst)
	}
}

func TestConv2DGradients(t *testing.T) {
	b := getBackend(t)
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		name            string
		size, cin, cout int
		k, s, pad       int
		tolerance       float64 // 0: gradTolerance.
	}{
		{"1x1", 4, 3, 2, 1, 1, 0, 0},
		{"3x3 pad 1", 5, 2, 3, 3, 1, 1, 0},
		{"7x7 pad 3", 6, 1, 2, 7, 1, 3, 0},
		{"4x4 stride 2 pad 1", 8, 2, 3, 4, 2, 1, 0},
		// On 48x48 the checked scalar sums ~70,000 products: its float64 central differences carry
		// rounding errors of about 1e-6 relative.
		{"3x3 16->16 on 48x48 (flat layout)", 48, 16, 16, 3, 1, 1, 1e-5},
		{"3x3 valid 16->16 on 48x48 (im2col, swapped products)", 48, 16, 16, 3, 1, 0, 1e-5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := randNHWC(rng, 2, tc.size, tc.size, tc.cin)
			k := randNHWC(rng, tc.k, tc.k, tc.cin, tc.cout)
			results, err := gradcheck.Inputs(b, func(in []*graph.Node) *graph.Node {
				p := [2]int{tc.pad, tc.pad}
				return Conv2D(in[0], in[1], tc.s, p, p)
			}, []*tensorsT{x.tensor(), k.tensor()}, gradcheck.Options{Coordinates: 16})
			checkResultsTol(t, results, err, cmp.Or(tc.tolerance, gradTolerance))
		})
	}
}

func TestConvTranspose2DGradients(t *testing.T) {
	b := getBackend(t)
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct {
		name       string
		size, k, s int
	}{{"4x4 stride 2 (sub-pixel)", 4, 4, 2}, {"4x4 stride 2 on 16x16 (sub-pixel, flat layout)", 16, 4, 2},
		{"3x3 stride 2 (generic)", 4, 3, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			x := randNHWC(rng, 2, tc.size, tc.size, 2)
			k := randNHWC(rng, tc.k, tc.k, 2, 3)
			results, err := gradcheck.Inputs(b, func(in []*graph.Node) *graph.Node {
				return ConvTranspose2D(in[0], in[1], tc.s, true)
			}, []*tensorsT{x.tensor(), k.tensor()}, gradcheck.Options{Coordinates: 16})
			checkResults(t, results, err)
		})
	}
}

// TestNativeConvolveDefect asserts the GoMLX defect that stride1Conv (engine.go) works around: the
// automatic input gradient of graph.Convolve is wrong for even kernel sizes (here 4x4, with stride 1
// and, where the engine can differentiate it, stride 2), on every engine, while the kernel gradient
// and odd kernels are right. When GoMLX fixes it this test fails: then drop the custom input
// gradient of stride1Conv and this test. The check runs in float32 (ONNX Runtime has no float64
// convolution); the checked sum is linear in each input, so central differences are exact for any
// step, and a step of 1 keeps float32 rounding to ~1e-4, far below the defect's errors of order 1.
func TestNativeConvolveDefect(t *testing.T) {
	b := getBackend(t)
	for _, tc := range []struct {
		name           string
		k, stride, pad int
		broken         bool
	}{
		{"3x3 stride 1 (odd: right)", 3, 1, 1, false},
		{"4x4 stride 1", 4, 1, 1, true},
		{"4x4 stride 2", 4, 2, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(9, 10))
			x := randNHWC(rng, 1, 8, 8, 2)
			k := randNHWC(rng, tc.k, tc.k, 2, 3)
			results, err := gradcheck.Inputs(b, func(in []*graph.Node) *graph.Node {
				return graph.Convolve(in[0], in[1]).StridePerAxis(tc.stride, tc.stride).
					PaddingPerDim([][2]int{{tc.pad, tc.pad}, {tc.pad, tc.pad}}).Done()
			}, []*tensorsT{x.tensor32(), k.tensor32()}, gradcheck.Options{Coordinates: 16, Eps: 1, Floor: 1e-2})
			if err != nil && tc.stride > 1 && strings.Contains(err.Error(), "dilations > 1 not supported") {
				t.Skipf("this engine cannot differentiate a strided convolution: %v", err)
			}
			if err != nil {
				t.Fatal(err)
			}
			_, summary := gradcheck.MaxRelErr(results)
			t.Logf("graph.Convolve %s on %s:\n%s", tc.name, b.Name(), summary)
			if len(results) != 2 {
				t.Fatalf("%d gradient checks, want the input's and the kernel's", len(results))
			}
			const right, wrong = 1e-3, 0.1
			if kernelErr := results[1].MaxRelErr; kernelErr > right {
				t.Errorf("kernel gradient: max rel err %.3g, want < %g", kernelErr, right)
			}
			inputErr := results[0].MaxRelErr
			switch {
			case tc.broken && inputErr < wrong:
				t.Errorf("input gradient: max rel err %.3g: GoMLX's Convolve input gradient is right now for "+
					"this even kernel: drop stride1Conv's custom gradient (engine.go) and this test", inputErr)
			case !tc.broken && inputErr > right:
				t.Errorf("input gradient: max rel err %.3g, want < %g", inputErr, right)
			}
		})
	}
}
