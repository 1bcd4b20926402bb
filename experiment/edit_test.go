package experiment

import (
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
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
