package mnist

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestScalePixel(t *testing.T) {
	for _, tc := range []struct {
		p    uint8
		want float32
	}{{0, -1}, {255, 1}, {51, -0.6}, {204, 0.6}, {127, -0.003921628}, {128, 0.003921628}} {
		if got := ScalePixel(tc.p); math.Abs(float64(got-tc.want)) > 1e-7 {
			t.Errorf("ScalePixel(%d) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if ScalePixel(0) != -1 || ScalePixel(255) != 1 {
		t.Error("ScalePixel must map 0 and 255 exactly to -1 and 1")
	}
	for p := range 256 {
		if got, want := ScalePixel(uint8(p)), float32(p)/127.5-1; got != want {
			t.Errorf("ScalePixel(%d) = %v, want float32(p)/127.5-1 = %v", p, got, want)
		}
	}
}

// srcCoord is the half-pixel source coordinate of output index o, clamped.
func srcCoord(o, in, out int) float64 {
	return min(max((float64(o)+0.5)*float64(in)/float64(out)-0.5, 0), float64(in-1))
}

// refResize is an independent float64 bilinear resize with clamped
// half-pixel source coordinates.
func refResize(src []float32, inH, inW, outH, outW int) []float64 {
	at := func(y, x int) float64 { return float64(src[y*inW+x]) }
	out := make([]float64, outH*outW)
	for oy := range outH {
		sy := srcCoord(oy, inH, outH)
		y0 := int(math.Floor(sy))
		y1, wy := min(y0+1, inH-1), sy-float64(y0)
		for ox := range outW {
			sx := srcCoord(ox, inW, outW)
			x0 := int(math.Floor(sx))
			x1, wx := min(x0+1, inW-1), sx-float64(x0)
			out[oy*outW+ox] = (1-wy)*((1-wx)*at(y0, x0)+wx*at(y0, x1)) + wy*((1-wx)*at(y1, x0)+wx*at(y1, x1))
		}
	}
	return out
}

func TestResizeBilinearClosedForm(t *testing.T) {
	const in, out = 28, 32
	impulse := make([]float32, in*in) // 1 at (row 1, col 1), 0 elsewhere
	impulse[1*in+1] = 1
	colRamp := make([]float32, in*in) // value = column index
	for y := range in {
		for x := range in {
			colRamp[y*in+x] = float32(x)
		}
	}
	dst := make([]float32, out*out)

	// Hand-computed: output o samples (o+0.5)*28/32-0.5, i.e. o=0 → -0.0625
	// (clamped to 0), o=1 → 0.8125, o=2 → 1.6875, o=31 → 27.0625 (clamped to 27).
	ResizeBilinear(dst, impulse, in, in, out, out)
	for _, tc := range []struct {
		y, x int
		want float32
	}{
		{0, 0, 0},
		{0, 1, 0},                     // row 0 of the source is all zeros
		{1, 1, 0.8125 * 0.8125},       // 0.66015625
		{1, 2, 0.8125 * (1 - 0.6875)}, // 0.25390625
		{2, 1, (1 - 0.6875) * 0.8125},
		{2, 2, (1 - 0.6875) * (1 - 0.6875)}, // 0.09765625
		{3, 3, 0},                           // samples rows/cols 2..3
		{31, 31, 0},
	} {
		if got := dst[tc.y*out+tc.x]; got != tc.want {
			t.Errorf("impulse: out(%d,%d) = %v, want %v", tc.y, tc.x, got, tc.want)
		}
	}

	// A linear ramp stays linear in the interior and is clamped at the edges.
	ResizeBilinear(dst, colRamp, in, in, out, out)
	for y := range out {
		for x := range out {
			want := float32((float64(x)+0.5)*0.875 - 0.5)
			switch x {
			case 0:
				want = 0
			case out - 1:
				want = 27
			}
			if got := dst[y*out+x]; got != want {
				t.Fatalf("ramp: out(%d,%d) = %v, want %v", y, x, got, want)
			}
		}
	}
	for x := 2; x < out-1; x++ { // constant slope 28/32 between interior pixels
		if d := dst[x] - dst[x-1]; d != 0.875 {
			t.Fatalf("ramp slope at %d = %v, want 0.875", x, d)
		}
	}
}

func TestResizeBilinearMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sz := range []struct{ inH, inW, outH, outW int }{
		{28, 28, 32, 32}, {28, 28, 28, 28}, {28, 28, 14, 14}, {28, 28, 64, 48}, {5, 3, 7, 11}, {1, 1, 4, 4},
	} {
		src := make([]float32, sz.inH*sz.inW)
		for i := range src {
			src[i] = rng.Float32()*2 - 1
		}
		dst := make([]float32, sz.outH*sz.outW)
		ResizeBilinear(dst, src, sz.inH, sz.inW, sz.outH, sz.outW)
		ref := refResize(src, sz.inH, sz.inW, sz.outH, sz.outW)
		for i := range dst {
			// TensorFlow (and ResizeBilinear) compute coordinates in float32;
			// for scales like 28/48 that are not exact that moves values by ~1e-6.
			if math.Abs(float64(dst[i])-ref[i]) > 1e-5 {
				t.Fatalf("%+v: pixel %d = %v, reference %v", sz, i, dst[i], ref[i])
			}
		}
		if sz.inH == sz.outH && sz.inW == sz.outW {
			for i := range dst {
				if dst[i] != src[i] {
					t.Fatalf("same-size resize is not the identity at %d", i)
				}
			}
		}
	}
}

func TestResizeBilinearPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"zero size": func() { ResizeBilinear(make([]float32, 4), make([]float32, 4), 2, 2, 0, 2) },
		"short dst": func() { ResizeBilinear(make([]float32, 3), make([]float32, 4), 2, 2, 2, 2) },
		"short src": func() { ResizeBilinear(make([]float32, 4), make([]float32, 3), 2, 2, 2, 2) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// synthDataset returns n pseudo-random examples with label i%10.
func synthDataset(n int, seed uint64) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 0))
	d := &Dataset{Images: make([][PixelsPerImage]uint8, n), Labels: make([]uint8, n)}
	for i := range n {
		for j := range d.Images[i] {
			d.Images[i][j] = uint8(rng.UintN(256))
		}
		d.Labels[i] = uint8(i % 10)
	}
	return d
}

func TestPreprocess(t *testing.T) {
	d := synthDataset(600, 3) // > 256 per worker on multi-core machines: exercises the split
	// Constant images stay constant; 0 → -1 and 255 → 1.
	for j := range PixelsPerImage {
		d.Images[0][j], d.Images[1][j], d.Images[2][j] = 0, 255, 200
	}
	// Image 3: an impulse of 255 at (1,1) on a 0 background.
	d.Images[3] = [PixelsPerImage]uint8{}
	d.Images[3][1*Cols+1] = 255

	all := d.Preprocess(0)
	if all.Shape() != [4]int{600, 32, 32, 1} || len(all.Data) != 600*32*32 {
		t.Fatalf("shape %v, %d values", all.Shape(), len(all.Data))
	}
	for i, want := range []float32{-1, 1, ScalePixel(200)} {
		for k, v := range all.Image(i) {
			if v != want {
				t.Fatalf("constant image %d: value %d = %v, want %v", i, k, v, want)
			}
		}
	}
	// In [-1, 1]: out(1,1) = -1 + 2*0.8125², out(2,2) = -1 + 2*0.3125².
	if got := all.Image(3)[1*32+1]; got != 0.3203125 {
		t.Errorf("impulse out(1,1) = %v, want 0.3203125", got)
	}
	if got := all.Image(3)[2*32+2]; got != -1+2*0.09765625 {
		t.Errorf("impulse out(2,2) = %v, want %v", got, -1+2*0.09765625)
	}
	for i, v := range all.Data {
		if v < -1 || v > 1 {
			t.Fatalf("value %d = %v outside [-1, 1]", i, v)
		}
	}
	// Each image equals scale-then-resize done by hand.
	scaled := make([]float32, PixelsPerImage)
	want := make([]float32, 32*32)
	for _, i := range []int{0, 3, 4, 599} {
		for j, p := range d.Images[i] {
			scaled[j] = ScalePixel(p)
		}
		ResizeBilinear(want, scaled, 28, 28, 32, 32)
		for k := range want {
			if all.Image(i)[k] != want[k] {
				t.Fatalf("image %d value %d = %v, want %v", i, k, all.Image(i)[k], want[k])
			}
		}
	}

	// PreprocessIndices and AppendPreprocessed give the same values, in index order.
	idx := []int{599, 4, 4, 0}
	batch := d.PreprocessIndices(idx, 32)
	if batch.Shape() != [4]int{4, 32, 32, 1} {
		t.Fatalf("batch shape %v", batch.Shape())
	}
	for k, i := range idx {
		for p, v := range batch.Image(k) {
			if v != all.Image(i)[p] {
				t.Fatalf("batch image %d (example %d) differs at %d", k, i, p)
			}
		}
	}
	buf := make([]float32, 5, 10000)
	buf[0] = 42
	got := d.AppendPreprocessed(buf[:1], idx[:2], 0)
	if len(got) != 1+2*1024 || got[0] != 42 || &got[0] != &buf[0] {
		t.Fatalf("AppendPreprocessed: len %d, first %v, reused %v", len(got), got[0], &got[0] == &buf[0])
	}
	for p := range 1024 {
		if got[1+1024+p] != all.Image(4)[p] {
			t.Fatalf("AppendPreprocessed differs at %d", p)
		}
	}

	// Other sizes: 28 is the identity on the scaled pixels.
	same := d.Subset(2).Preprocess(28)
	if same.Shape() != [4]int{2, 28, 28, 1} || same.Data[0] != -1 || same.Data[28*28] != 1 {
		t.Fatalf("size 28: shape %v", same.Shape())
	}
	if small := d.PreprocessIndices([]int{3}, 16); small.Shape() != [4]int{1, 16, 16, 1} {
		t.Fatalf("size 16: shape %v", small.Shape())
	}
}
