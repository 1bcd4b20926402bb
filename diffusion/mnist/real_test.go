package mnist

import (
	"testing"
	"time"
)

// TestRealMNIST loads the real data set found by DefaultDir.
func TestRealMNIST(t *testing.T) {
	dir, err := DefaultDir()
	if err != nil {
		t.Skipf("real MNIST not available: %v", err)
	}
	for _, tc := range []struct {
		split      Split
		n          int
		firstDigit uint8
		histogram  [NumClasses]int // the well-known class counts of MNIST
	}{
		{Train, 60000, 5, [NumClasses]int{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949}},
		{Test, 10000, 7, [NumClasses]int{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}},
	} {
		t.Run(tc.split.String(), func(t *testing.T) {
			start := time.Now()
			d, err := Load(dir, tc.split)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("loaded %d %v examples from %s in %v", d.Len(), tc.split, dir, time.Since(start))
			if d.Len() != tc.n || len(d.Labels) != tc.n {
				t.Fatalf("%d images, %d labels; want %d", d.Len(), len(d.Labels), tc.n)
			}
			if d.Labels[0] != tc.firstDigit {
				t.Errorf("first label %d, want %d", d.Labels[0], tc.firstDigit)
			}
			var hist [NumClasses]int
			for _, l := range d.Labels {
				hist[l]++
			}
			for c, k := range hist {
				// Plausible: every class holds 8%..12% of the set.
				if f := float64(k) / float64(tc.n); f < 0.08 || f > 0.12 {
					t.Errorf("class %d holds %.1f%% of the set", c, 100*f)
				}
			}
			if hist != tc.histogram {
				t.Errorf("label histogram %v, want %v", hist, tc.histogram)
			}
			minP, maxP, sum := 255, 0, 0
			for i := range d.Images {
				for _, p := range d.Images[i] {
					minP, maxP, sum = min(minP, int(p)), max(maxP, int(p)), sum+int(p)
				}
			}
			mean := float64(sum) / float64(tc.n*PixelsPerImage)
			if minP != 0 || maxP != 255 || mean < 30 || mean > 37 { // MNIST's mean is about 0.13*255 = 33
				t.Errorf("pixels in [%d, %d], mean %.2f; want [0, 255], mean ≈ 33", minP, maxP, mean)
			}

			start = time.Now()
			all := d.Preprocess(DefaultSize)
			t.Logf("preprocessed to %v in %v", all.Shape(), time.Since(start))
			if all.Shape() != [4]int{tc.n, 32, 32, 1} {
				t.Fatalf("shape %v", all.Shape())
			}
			lo, hi := float32(1), float32(-1)
			for _, v := range all.Data {
				lo, hi = min(lo, v), max(hi, v)
			}
			if lo != -1 || hi > 1 || hi < 0.9 {
				t.Errorf("preprocessed values in [%v, %v], want within [-1, 1] reaching -1 and near 1", lo, hi)
			}
			// Borders of a digit are background: the corner pixel is exactly -1.
			if v := all.Image(0)[0]; v != -1 {
				t.Errorf("corner pixel %v, want -1", v)
			}
		})
	}
}
