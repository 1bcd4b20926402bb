package quality

import (
	"math"
	"testing"
)

// oneHotProbs returns probabilities putting p on the given class and the rest evenly on the others.
func oneHotProbs(classes []int, p float32) []float32 {
	out := make([]float32, len(classes)*NumClasses)
	for i, c := range classes {
		for k := range NumClasses {
			out[i*NumClasses+k] = (1 - p) / (NumClasses - 1)
		}
		out[i*NumClasses+c] = p
	}
	return out
}

func TestScoreOutputs(t *testing.T) {
	// Perfect, balanced: 20 images, 2 of each digit, all with probability 1.
	classes := make([]int, 20)
	for i := range classes {
		classes[i] = i % NumClasses
	}
	s, err := ScoreOutputs(&Outputs{N: 20, Probs: oneHotProbs(classes, 1)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Confidence != 1 || s.Confident != 1 || s.Classes != 10 || !math.IsNaN(s.FD) {
		t.Errorf("perfect: %+v", s)
	}
	for c, k := range s.Histogram {
		if k != 2 {
			t.Errorf("histogram[%d] = %d, want 2", c, k)
		}
	}
	checkClose(t, "classifier score of perfect balanced predictions", s.ClassifierScore, 10, 1e-6)

	// Mode collapse: every image a confident 3: score 1, one class.
	s, err = ScoreOutputs(&Outputs{N: 5, Probs: oneHotProbs([]int{3, 3, 3, 3, 3}, 0.95)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Classes != 1 || s.Histogram[3] != 5 || s.Confident != 1 {
		t.Errorf("collapsed: %+v", s)
	}
	checkClose(t, "classifier score of identical predictions", s.ClassifierScore, 1, 1e-6)
	checkClose(t, "confidence", s.Confidence, 0.95, 1e-6)

	// Uniform probabilities: confidence 0.1, nothing confident, score 1; the arg max is the first class.
	s, err = ScoreOutputs(&Outputs{N: 4, Probs: oneHotProbs([]int{0, 1, 2, 3}, 0.1)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkClose(t, "uniform confidence", s.Confidence, 0.1, 1e-6)
	checkClose(t, "uniform classifier score", s.ClassifierScore, 1, 1e-6)
	if s.Confident != 0 || s.Classes != 0 {
		t.Errorf("uniform: %+v", s)
	}

	// Mixed: probabilities 0.95, 0.5, 0.9, 0.3 on classes 1, 2, 1, 7.
	probs := append(append(append(oneHotProbs([]int{1}, 0.95), oneHotProbs([]int{2}, 0.5)...),
		oneHotProbs([]int{1}, 0.9)...), oneHotProbs([]int{7}, 0.3)...)
	s, err = ScoreOutputs(&Outputs{N: 4, Probs: probs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkClose(t, "mixed confidence", s.Confidence, (0.95+0.5+0.9+0.3)/4, 1e-6)
	checkClose(t, "mixed confident fraction", s.Confident, 0.5, 0)
	if s.Classes != 1 || s.Histogram[1] != 2 || s.Histogram[2] != 1 || s.Histogram[7] != 1 {
		t.Errorf("mixed: %+v", s)
	}
	// Classifier score by hand.
	marginal := make([]float64, NumClasses)
	for i, p := range probs {
		marginal[i%NumClasses] += float64(p) / 4
	}
	kl := 0.0
	for i, p := range probs {
		kl += float64(p) * math.Log(float64(p)/marginal[i%NumClasses])
	}
	checkClose(t, "mixed classifier score", s.ClassifierScore, math.Exp(kl/4), 1e-9)
	if got := s.HistogramString(); got != "0:0 1:2 2:1 3:0 4:0 5:0 6:0 7:1 8:0 9:0" {
		t.Errorf("HistogramString = %q", got)
	}

	// With features: the Fréchet distance to a reference; identical feature statistics give 0.
	feats := make([]float32, 4*FeatureDim)
	for i := range feats {
		feats[i] = float32((i*7919)%13) / 13
	}
	ref, err := FitGaussian(feats, 4, FeatureDim)
	if err != nil {
		t.Fatal(err)
	}
	s, err = ScoreOutputs(&Outputs{N: 4, Probs: probs, Features: feats}, ref)
	if err != nil {
		t.Fatal(err)
	}
	checkClose(t, "FD to own statistics", s.FD, 0, 1e-9)
	shifted := append([]float32(nil), feats...)
	for i := range shifted {
		shifted[i] += 0.5
	}
	s, err = ScoreOutputs(&Outputs{N: 4, Probs: probs, Features: shifted}, ref)
	if err != nil {
		t.Fatal(err)
	}
	checkClose(t, "FD of shifted features", s.FD, 0.25*FeatureDim, 1e-6)

	// Errors.
	if _, err := ScoreOutputs(&Outputs{N: 2, Probs: make([]float32, 10)}, nil); err == nil {
		t.Error("wrong number of probabilities accepted")
	}
	if _, err := ScoreOutputs(&Outputs{N: 1, Probs: oneHotProbs([]int{1}, 1), Features: feats[:FeatureDim]}, ref); err == nil {
		t.Error("FD of a single image accepted")
	}
	if _, err := ScoreOutputs(&Outputs{N: 4, Probs: probs, Features: feats[:10]}, ref); err == nil {
		t.Error("wrong number of features accepted")
	}
	nan := oneHotProbs([]int{1}, 1)
	nan[3] = float32(math.NaN())
	if _, err := ScoreOutputs(&Outputs{N: 1, Probs: nan}, nil); err == nil {
		t.Error("NaN probabilities accepted")
	}
}

func TestPatchify(t *testing.T) {
	// One image whose pixel (r, c) holds a distinct value; check a patch in the middle and at the border.
	src := make([]float32, ImageSize*ImageSize)
	for i := range src {
		src[i] = float32(i)/float32(len(src))*2 - 1
	}
	src[0] = 5 // out of range: clipped to 1 -> 1 after mapping
	dst := make([]float32, gridSize*gridSize*patchLen)
	patchify(dst, src, 1)
	mapped := func(r, c int) float32 {
		if r < 0 || r >= ImageSize || c < 0 || c >= ImageSize {
			return 0
		}
		return (min(max(src[r*ImageSize+c], -1), 1) + 1) / 2
	}
	for _, g := range [][2]int{{0, 0}, {7, 9}, {15, 15}, {0, 15}} {
		patch := dst[(g[0]*gridSize+g[1])*patchLen : (g[0]*gridSize+g[1]+1)*patchLen]
		for di := range patchSize {
			for dj := range patchSize {
				want := mapped(g[0]*2-1+di, g[1]*2-1+dj)
				if got := patch[di*patchSize+dj]; got != want {
					t.Fatalf("grid %v offset (%d,%d): %v, want %v", g, di, dj, got, want)
				}
			}
		}
	}
	if dst[(0*gridSize+0)*patchLen+1*patchSize+1] != 1 {
		t.Errorf("pixel (0,0) = 5 not clipped to 1 (mapped 1)")
	}
}

func TestShiftImage(t *testing.T) {
	src := make([]float32, ImageSize*ImageSize)
	for i := range src {
		src[i] = float32(i)
	}
	dst := make([]float32, len(src))
	shiftImage(dst, src, 0, 0)
	for i := range src {
		if dst[i] != src[i] {
			t.Fatal("zero shift changed the image")
		}
	}
	shiftImage(dst, src, 2, -1) // down 2, left 1
	for r := range ImageSize {
		for c := range ImageSize {
			want := float32(-1)
			if r >= 2 && c <= ImageSize-2 {
				want = src[(r-2)*ImageSize+c+1]
			}
			if got := dst[r*ImageSize+c]; got != want {
				t.Fatalf("(%d,%d) = %v, want %v", r, c, got, want)
			}
		}
	}
}
