package kernel

import (
	"bytes"
	"fmt"
	"image/gif"
	"math"
	"reflect"
	"testing"
)

func TestToGray(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	for _, c := range []struct {
		v    float32
		want uint8
	}{
		{-1, 0}, {1, 255}, {0, 128}, // 127.5 rounds half away from zero.
		{0.5, 191}, {-0.5, 64}, // 191.25, 63.75
		{-2, 0}, {2, 255}, {-1.0001, 0}, {1.0001, 255}, // Clipped.
		{nan, 0}, {inf, 255}, {-inf, 0},
	} {
		if got := ToGray(c.v); got != c.want {
			t.Errorf("ToGray(%v) = %d, want %d", c.v, got, c.want)
		}
	}
	for g := 0; g < 256; g++ {
		if got := ToGray(FromGray(uint8(g))); got != uint8(g) {
			t.Errorf("ToGray(FromGray(%d)) = %d", g, got)
		}
	}
	if FromGray(0) != -1 || FromGray(255) != 1 {
		t.Errorf("FromGray(0), FromGray(255) = %v, %v, want -1, 1", FromGray(0), FromGray(255))
	}
}

// testBatch returns a batch filled with -1 (black).
func testBatch(n, h, w int) Batch {
	b := Batch{N: n, H: h, W: w, Data: make([]float32, n*h*w)}
	for i := range b.Data {
		b.Data[i] = -1
	}
	return b
}

func TestGrid(t *testing.T) {
	b := testBatch(5, 2, 3)
	b.Image(4)[1*3+2] = 1 // Image 4, y=1, x=2: white.
	img := Grid(b, 3, 1, 2)
	// 3 columns of 3*2 pixels + 4 paddings; 2 rows of 2*2 pixels + 3 paddings.
	if w, h := img.Bounds().Dx(), img.Bounds().Dy(); w != 22 || h != 11 {
		t.Fatalf("grid size %dx%d, want 22x11", w, h)
	}
	if w, h := GridSize(5, 2, 3, 3, 1, 2); w != 22 || h != 11 {
		t.Errorf("GridSize = %dx%d, want 22x11", w, h)
	}
	// Image 4 is at row 1, column 1: its top-left corner is (1+7, 1+5) = (8, 6);
	// its pixel (x=2, y=1) covers x 12..13, y 8..9.
	for y := 8; y <= 9; y++ {
		for x := 12; x <= 13; x++ {
			if g := img.GrayAt(x, y).Y; g != 255 {
				t.Errorf("pixel (%d,%d) = %d, want 255", x, y, g)
			}
		}
	}
	for _, p := range [][2]int{{11, 8}, {12, 7}, {8, 6}, {13, 9 - 2}} {
		if g := img.GrayAt(p[0], p[1]).Y; g != 0 {
			t.Errorf("pixel %v = %d, want 0 (black image)", p, g)
		}
	}
	for _, p := range [][2]int{{0, 0}, {7, 6}, {14, 8}, {21, 10}, {15, 6} /* unused cell */, {20, 9}} {
		if g := img.GrayAt(p[0], p[1]).Y; g != PadGray {
			t.Errorf("pixel %v = %d, want padding %d", p, g, PadGray)
		}
	}
	// Defaults: cols <= 0 is ceil(sqrt(5)) = 3; scale 0 is 1; no padding.
	if r := Grid(b, 0, 0, 0).Bounds(); r.Dx() != 9 || r.Dy() != 4 {
		t.Errorf("default grid %v, want 9x4", r)
	}
	// cols > N is reduced to N.
	if r := Grid(b.Slice(0, 2), 10, 0, 1).Bounds(); r.Dx() != 6 || r.Dy() != 2 {
		t.Errorf("grid of 2 with 10 cols %v, want 6x2", r)
	}
	if g := GridWithPad(b, 3, 1, 1, 7).GrayAt(0, 0).Y; g != 7 {
		t.Errorf("GridWithPad padding = %d, want 7", g)
	}
	defer func() {
		if recover() == nil {
			t.Error("Grid of an inconsistent batch did not panic")
		}
	}()
	Grid(Batch{N: 2, H: 2, W: 2, Data: make([]float32, 7)}, 1, 0, 1)
}

func TestBatchFromImages(t *testing.T) {
	b, err := BatchFromImages([][]float32{{1, 2, 3, 4}, {5, 6, 7, 8}}, 2, 2)
	if err != nil || b.N != 2 || !reflect.DeepEqual(b.Image(1), []float32{5, 6, 7, 8}) {
		t.Errorf("BatchFromImages = %+v, %v", b, err)
	}
	if _, err := BatchFromImages([][]float32{{1, 2, 3}}, 2, 2); err == nil {
		t.Error("BatchFromImages accepted a short image")
	}
	if err := (Batch{N: 1, H: 2, W: 2, Data: make([]float32, 3)}).Validate(); err == nil {
		t.Error("Validate accepted a short batch")
	}
}

func TestGIF(t *testing.T) {
	var frames []Batch
	for k := 0; k < 3; k++ {
		b := testBatch(4, 2, 2)
		for i := range b.Data {
			b.Data[i] = float32(k) - 1 // Frame k is uniformly gray level ToGray(k-1).
		}
		frames = append(frames, b)
	}
	g := GIF(frames, GIFOptions{Cols: 2, Pad: 1, Scale: 2, Delay: 7, Hold: 50})
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, g); err != nil {
		t.Fatal(err)
	}
	d, err := gif.DecodeAll(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Image) != 3 {
		t.Fatalf("%d frames, want 3", len(d.Image))
	}
	if !reflect.DeepEqual(d.Delay, []int{7, 7, 57}) {
		t.Errorf("delays %v, want [7 7 57]", d.Delay)
	}
	if d.LoopCount != 0 {
		t.Errorf("LoopCount %d, want 0 (forever)", d.LoopCount)
	}
	w, h := GridSize(4, 2, 2, 2, 1, 2)
	if d.Config.Width != w || d.Config.Height != h || w != 11 || h != 11 {
		t.Errorf("size %dx%d, want %dx%d (11x11)", d.Config.Width, d.Config.Height, w, h)
	}
	for k, want := range []uint8{0, 128, 255} {
		gray, _, _, _ := d.Image[k].At(1, 1).RGBA()
		if uint8(gray>>8) != want {
			t.Errorf("frame %d pixel (1,1) = %d, want %d", k, gray>>8, want)
		}
		pad, _, _, _ := d.Image[k].At(0, 0).RGBA()
		if uint8(pad>>8) != PadGray {
			t.Errorf("frame %d padding = %d, want %d", k, pad>>8, PadGray)
		}
	}
	// Defaults: delay 10, no hold.
	if g := GIF(frames[:2], GIFOptions{}); !reflect.DeepEqual(g.Delay, []int{10, 10}) {
		t.Errorf("default delays %v", g.Delay)
	}
}

func TestBackAndForth(t *testing.T) {
	b := Batch{N: 4, H: 1, W: 1, Data: []float32{0, 1, 2, 3}}
	var got []float32
	for _, f := range BackAndForth(b) {
		if f.N != 1 {
			t.Fatalf("frame of %d images, want 1", f.N)
		}
		got = append(got, f.Data...)
	}
	if want := []float32{0, 1, 2, 3, 2, 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("frames %v, want %v", got, want)
	}
	if n := len(BackAndForth(Batch{N: 1, H: 1, W: 1, Data: []float32{5}})); n != 1 {
		t.Errorf("one image gives %d frames, want 1", n)
	}
}

func TestEvenlySpaced(t *testing.T) {
	for _, c := range []struct {
		n, k int
		want []int
	}{
		{1000, 5, []int{0, 250, 500, 749, 999}},
		{3, 10, []int{0, 1, 2}},
		{10, 1, []int{9}},
		{10, 2, []int{0, 9}},
		{0, 3, nil},
		{5, 0, nil},
	} {
		if got := EvenlySpaced(c.n, c.k); !reflect.DeepEqual(got, c.want) {
			t.Errorf("EvenlySpaced(%d, %d) = %v, want %v", c.n, c.k, got, c.want)
		}
	}
	for n := 1; n < 60; n++ {
		for k := 1; k <= n; k++ {
			got := EvenlySpaced(n, k)
			if len(got) != k || got[len(got)-1] != n-1 {
				t.Fatalf("EvenlySpaced(%d, %d) = %v", n, k, got)
			}
			for i := 1; i < len(got); i++ {
				if got[i] <= got[i-1] {
					t.Fatalf("EvenlySpaced(%d, %d) = %v not increasing", n, k, got)
				}
			}
		}
	}
}
