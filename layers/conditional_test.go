package layers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// TestClassEmbedding reads rows of the table through the one-hot product: each label's embedding is
// its row, and a label past the table embeds to zeros.
func TestClassEmbedding(t *testing.T) {
	store := model.NewStore()
	e := model.MustNewExec(getBackend(t), store, func(scope *model.Scope, labels *graph.Node) *graph.Node {
		return ClassEmbedding(scope, labels, 3, 5)
	})
	got := tensors.MustCopyFlatData[float32](e.MustExec([]int32{2, 0, 3, 4})[0])
	table := tensors.MustCopyFlatData[float32](store.GetVariable("/embeddings").MustValue())
	if len(table) != 4*5 || len(got) != 4*5 {
		t.Fatalf("table has %d values, output %d; want 20 each ([classes+1, dim] and [batch, dim])", len(table), len(got))
	}
	for i, row := range []int{2, 0, 3, -1} {
		for j := range 5 {
			want := float32(0)
			if row >= 0 {
				want = table[row*5+j]
			}
			if got[i*5+j] != want {
				t.Fatalf("label %d, feature %d: %g, want %g", row, j, got[i*5+j], want)
			}
		}
	}
	var sum2 float64
	for _, v := range table {
		sum2 += float64(v * v)
	}
	if rms := math.Sqrt(sum2 / 20); rms < 0.4 || rms > 1.8 {
		t.Errorf("initial embeddings have RMS %.3f, want about 1 (N(0, 1))", rms)
	}
}

// TestConditionalUNet checks the class-conditional U-Net: its only extra variable is the embedding
// table, different labels give different predictions, nil labels equal explicit "no label", and an
// unconditional network refuses labels.
func TestConditionalUNet(t *testing.T) {
	b := getBackend(t)
	plain, cond := Tiny(), Tiny()
	cond.Classes = 3
	count := func(cfg UNetConfig) int {
		store := model.NewStore()
		e := model.MustNewExec(b, store, func(scope *model.Scope, x, tt *graph.Node) *graph.Node { return UNet(scope, x, tt, cfg) })
		e.MustExec(randomImages(1, cfg.ImageSize), []int32{3})
		return NumTrainableParameters(store)
	}
	if got, want := count(cond)-count(plain), (cond.Classes+1)*4*cond.TimeEmbeddingDim(); got != want {
		t.Errorf("the conditional U-Net has %d more parameters, want %d (the [classes+1, 4*TimeDim] table)", got, want)
	}
	store := model.NewStore()
	withLabels := model.MustNewExec(b, store, func(scope *model.Scope, x, tt, labels *graph.Node) *graph.Node {
		return UNetWithLabels(scope, x, tt, labels, cond)
	})
	withoutLabels := model.MustNewExec(b, store, func(scope *model.Scope, x, tt *graph.Node) *graph.Node { return UNet(scope, x, tt, cond) })
	x := randomImages(4, cond.ImageSize)
	ts := []int32{50, 50, 50, 50}
	out := tensors.MustCopyFlatData[float32](withLabels.MustExec(x, ts, []int32{0, 1, 2, 3})[0])
	none := tensors.MustCopyFlatData[float32](withoutLabels.MustExec(x, ts)[0])
	per := len(out) / 4
	// Tiny has the tutorial's blocks, whose output does not start at zero: the labels show at once.
	same := func(a, b []float32) bool {
		for i := range a {
			if math.Abs(float64(a[i]-b[i])) > 1e-5 {
				return false
			}
		}
		return true
	}
	xs := tensors.MustCopyFlatData[float32](x)
	for i := range 4 {
		if !same(xs[i*per:(i+1)*per], xs[0:per]) {
			t.Fatal("randomImages should repeat one image (the test compares labels on it)")
		}
	}
	if same(out[0:per], out[per:2*per]) {
		t.Error("labels 0 and 1 give the same prediction")
	}
	if !same(out[3*per:], none[3*per:]) {
		t.Error("nil labels differ from the explicit \"no label\" (3)")
	}
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "unconditional") {
				t.Errorf("labels on an unconditional U-Net: panic %v, want one naming it unconditional", r)
			}
		}()
		e := model.MustNewExec(b, model.NewStore(), func(scope *model.Scope, x, tt, labels *graph.Node) *graph.Node {
			return UNetWithLabels(scope, x, tt, labels, plain)
		})
		e.MustExec(randomImages(1, plain.ImageSize), []int32{3}, []int32{0})
	}()
}

// randomImages returns n copies of one random image [n, size, size, 1].
func randomImages(n, size int) *tensors.Tensor {
	rng := rand.New(rand.NewPCG(3, 4))
	img := make([]float32, size*size)
	for i := range img {
		img[i] = float32(rng.NormFloat64())
	}
	v := make([]float32, 0, n*size*size)
	for range n {
		v = append(v, img...)
	}
	return tensors.FromFlatDataAndDimensions(v, n, size, size, 1)
}
