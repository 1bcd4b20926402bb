package experiment

import (
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/godiffusion/godiffusion/diffusion/mnist"
)

// TestInpaintMask: each region hides its half (mask 0) and keeps the other (mask 1).
func TestInpaintMask(t *testing.T) {
	const size = 4
	for _, tc := range []struct {
		region string
		hidden func(y, x int) bool
	}{
		{"lower", func(y, _ int) bool { return y >= 2 }},
		{"upper", func(y, _ int) bool { return y < 2 }},
		{"left", func(_, x int) bool { return x < 2 }},
		{"right", func(_, x int) bool { return x >= 2 }},
	} {
		m, err := InpaintMask(tc.region, 2, size)
		if err != nil {
			t.Fatal(err)
		}
		v := tensors.MustCopyFlatData[float32](m)
		if len(v) != 2*size*size {
			t.Fatalf("%s: %d values", tc.region, len(v))
		}
		for i, got := range v {
			y, x := (i/size)%size, i%size
			if want := float32(1); (got == want) == tc.hidden(y, x) {
				t.Fatalf("%s: mask at (%d, %d) = %g", tc.region, y, x, got)
			}
		}
	}
	if _, err := InpaintMask("middle", 1, size); err == nil {
		t.Error("region middle accepted")
	}
	images := tensors.FromFlatDataAndDimensions([]float32{1, -1, 0.5, 0.25}, 1, 2, 2, 1)
	mask, _ := InpaintMask("lower", 1, 2)
	masked, err := Masked(images, mask)
	if err != nil {
		t.Fatal(err)
	}
	if got := tensors.MustCopyFlatData[float32](masked); got[0] != 1 || got[1] != -1 || got[2] != 0 || got[3] != 0 {
		t.Errorf("masked lower half: %v, want [1 -1 0 0]", got)
	}
}

// TestDigitImages picks the first images of the seed's permutation, with their own labels, shaped
// for the model, and refuses more images than the data set holds.
func TestDigitImages(t *testing.T) {
	dir, err := mnist.DefaultDir()
	if err != nil {
		t.Skip(err)
	}
	d, err := mnist.Load(dir, mnist.Test)
	if err != nil {
		t.Fatal(err)
	}
	images, labels, err := DigitImages(d, 4, 32, 1)
	if err != nil {
		t.Fatal(err)
	}
	if dims := images.Shape().Dimensions; len(dims) != 4 || dims[0] != 4 || dims[1] != 32 || dims[2] != 32 || dims[3] != 1 {
		t.Errorf("images shaped %v, want [4 32 32 1]", dims)
	}
	idx := mnist.Permutation(1, 0, d.Len())[:4]
	want := d.PreprocessIndices(idx, 32).Data
	got := tensors.MustCopyFlatData[float32](images)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pixel %d = %g, want the preprocessed image's %g", i, got[i], want[i])
		}
	}
	for i, l := range labels {
		if l != int(d.Labels[idx[i]]) {
			t.Errorf("label %d is %d, want the data set's %d", i, l, d.Labels[idx[i]])
		}
	}
	if _, _, err := DigitImages(d, d.Len()+1, 32, 1); err == nil {
		t.Error("more images than the data set: no error")
	}
}
