package diffusion

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/initializer"
)

// TestAddNoiseStatistics checks q(x_t | x_0): for a fixed x_0, x_t has mean sqrt(ᾱ_t) x_0 and
// variance 1 - ᾱ_t, estimated over many noise draws.
func TestAddNoiseStatistics(t *testing.T) {
	s, _ := ScheduleByName(ScheduleLinear, 200)
	const n = 20000
	for _, step := range []int{0, 10, 50, 100, 185, 199} {
		exec := MustNewExec(testBackend(), func(x0, eps, ts *Node) *Node { return AddNoise(s, x0, eps, ts) })
		rng := rand.New(rand.NewPCG(1, uint64(step)))
		x0 := make([]float32, n)
		eps := make([]float32, n)
		ts := make([]int32, n)
		for i := range x0 {
			x0[i] = 0.7
			eps[i] = float32(rng.NormFloat64())
			ts[i] = int32(step)
		}
		out := exec.MustCall(tensors.FromFlatDataAndDimensions(x0, n, 1), tensors.FromFlatDataAndDimensions(eps, n, 1), ts)[0]
		xt, _ := tensors.CopyFlatData[float32](out)
		var mean, variance float64
		for _, v := range xt {
			mean += float64(v)
		}
		mean /= n
		for _, v := range xt {
			variance += (float64(v) - mean) * (float64(v) - mean)
		}
		variance /= n - 1
		wantMean, wantVar := 0.7*s.SqrtAlphaBars[step], 1-s.AlphaBars[step]
		// Standard errors: sqrt(var/n) for the mean, var*sqrt(2/n) for the variance; allow 5 of them.
		if math.Abs(mean-wantMean) > 5*math.Sqrt(wantVar/n)+1e-6 {
			t.Errorf("t=%d: mean %.5f, want %.5f", step, mean, wantMean)
		}
		if math.Abs(variance-wantVar) > 5*wantVar*math.Sqrt(2.0/n)+1e-9 {
			t.Errorf("t=%d: variance %.6f, want %.6f", step, variance, wantVar)
		}
	}
}

// scalarDenoiser learns one gain per timestep: ε̂ = w[t] x_t. For data N(0, s2) the optimum is
// the analytic w*[t] = sqrt(1 - ᾱ_t) / (ᾱ_t s2 + 1 - ᾱ_t).
func scalarDenoiser(T int) Denoiser {
	return func(scope *model.Scope, x, t *Node) *Node {
		w := scope.WithInitializer(initializer.Zero).VariableWithShape("gain", shapes.Make(dtypes.Float32, T))
		gain := Gather(w.NodeValue(x.Graph()), InsertAxes(t, -1))
		return Mul(Reshape(gain, t.Shape().Dimensions[0], 1, 1, 1), x)
	}
}

func gaussianBatch(rng *rand.Rand, n, h int, s2 float64) *tensors.Tensor {
	v := make([]float32, n*h*h)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * math.Sqrt(s2))
	}
	return tensors.FromFlatDataAndDimensions(v, n, h, h, 1)
}

// TestTrainerLearnsOptimalDenoiser trains the per-timestep gain on Gaussian data and compares it
// with the analytic optimum: this exercises in-graph sampling of t and noise, the loss, the
// gradients and the Adam update together.
func TestTrainerLearnsOptimalDenoiser(t *testing.T) {
	const T, s2 = 10, 0.3
	s, _ := LinearSchedule(T, 0.05, 0.5)
	store := model.NewStore()
	tr, err := NewTrainer(testBackend(), store, s, scalarDenoiser(T), TrainConfig{LearningRate: 0.02, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	var first, last float64
	for step := range 600 {
		loss, err := tr.Step(gaussianBatch(rng, 64, 4, s2))
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = loss
		}
		last = loss
	}
	if tr.GlobalStep() != 600 {
		t.Errorf("global step %d, want 600", tr.GlobalStep())
	}
	gain, _ := tensors.CopyFlatData[float32](store.GetVariable("/model/gain").MustValue())
	for i := range T {
		ab := s.AlphaBars[i]
		want := math.Sqrt(1-ab) / (ab*s2 + 1 - ab)
		if math.Abs(float64(gain[i])-want) > 0.05*want+0.02 {
			t.Errorf("gain[%d] = %.4f, optimum %.4f", i, gain[i], want)
		}
	}
	t.Logf("loss %.4f -> %.4f", first, last)
	if !(last < first) {
		t.Errorf("loss did not decrease: %.4f -> %.4f", first, last)
	}
}

// TestTrainerResumeIsExact saves a checkpoint mid-run, loads it into a fresh store and continues:
// the parameters must end bit-identical to an uninterrupted run (weights, Adam state and the
// random stream all travel in the checkpoint).
func TestTrainerResumeIsExact(t *testing.T) {
	const T = 10
	s, _ := LinearSchedule(T, 0.05, 0.5)
	batches := make([]*tensors.Tensor, 8)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range batches {
		batches[i] = gaussianBatch(rng, 8, 4, 0.3)
	}
	run := func(store *model.Store, from, to int) {
		tr, err := NewTrainer(testBackend(), store, s, scalarDenoiser(T), TrainConfig{LearningRate: 0.01, Seed: 11})
		if err != nil {
			t.Fatal(err)
		}
		for i := from; i < to; i++ {
			if _, err := tr.Step(batches[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	straight := model.NewStore()
	run(straight, 0, 8)

	first := model.NewStore()
	run(first, 0, 3)
	path := filepath.Join(t.TempDir(), "ckpt.bin")
	type meta struct{ Preset string }
	if err := SaveCheckpoint(path, first, meta{"scalar"}); err != nil {
		t.Fatal(err)
	}
	resumed := model.NewStore()
	var m meta
	if err := LoadCheckpoint(path, resumed, &m); err != nil {
		t.Fatal(err)
	}
	if m.Preset != "scalar" {
		t.Errorf("metadata %+v lost", m)
	}
	run(resumed, 3, 8)

	for v := range straight.IterVariables() {
		a, _ := v.Value()
		rv := resumed.GetVariable(v.Path())
		if rv == nil {
			t.Fatalf("variable %s missing after resume", v.Path())
		}
		b, _ := rv.Value()
		if !a.Equal(b) {
			t.Errorf("variable %s differs between straight and resumed runs:\n%v\n%v", v.Path(), a, b)
		}
	}
}

func TestCheckpointErrors(t *testing.T) {
	dir := t.TempDir()
	store := model.NewStore()
	if _, err := store.CreateVariable("/model/w", tensors.FromValue([]float32{1, 2, 3})); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "a.ckpt")
	if err := SaveCheckpoint(path, store, map[string]int{"width": 3}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)

	// Truncated and bit-flipped files are rejected as corrupt, leaving the store untouched.
	for name, data := range map[string][]byte{
		"truncated": raw[:len(raw)-7],
		"flipped":   append(append([]byte{}, raw[:len(raw)-9]...), raw[len(raw)-9]^0xff, 0, 0, 0, 0, 0, 0, 0, 0)[:len(raw)],
		"not-ckpt":  []byte("hello world, definitely not a checkpoint"),
	} {
		bad := filepath.Join(dir, name)
		_ = os.WriteFile(bad, data, 0o644)
		fresh := model.NewStore()
		if err := LoadCheckpoint(bad, fresh, nil); !errors.Is(err, ErrCorruptCheckpoint) {
			t.Errorf("%s: error %v, want ErrCorruptCheckpoint", name, err)
		}
		if fresh.NumVariables() != 0 {
			t.Errorf("%s: failed load created %d variables", name, fresh.NumVariables())
		}
	}
	// A model of another size: the error names the variable and the shapes.
	other := model.NewStore()
	if _, err := other.CreateVariable("/model/w", tensors.FromValue([]float32{1, 2})); err != nil {
		t.Fatal(err)
	}
	err := LoadCheckpoint(path, other, nil)
	if err == nil {
		t.Fatal("loading into a model of another shape succeeded")
	}
	t.Log(err)
	if _, err := os.Stat(filepath.Join(dir, "missing.ckpt")); err == nil {
		t.Fatal("unexpected file")
	}
	if err := LoadCheckpoint(filepath.Join(dir, "missing.ckpt"), model.NewStore(), nil); err == nil {
		t.Error("missing file accepted")
	}
}

func TestTrainerStopsOnNaN(t *testing.T) {
	s, _ := LinearSchedule(10, 0.05, 0.5)
	tr, err := NewTrainer(testBackend(), model.NewStore(), s, scalarDenoiser(10), TrainConfig{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	x := gaussianBatch(rand.New(rand.NewPCG(1, 1)), 2, 2, 1)
	if _, err := tr.Step(x); err != nil {
		t.Fatal(err)
	}
	v := make([]float32, 8)
	v[3] = float32(math.NaN())
	_, err = tr.Step(tensors.FromFlatDataAndDimensions(v, 2, 2, 2, 1))
	if err == nil || !strings.Contains(err.Error(), "diverged") {
		t.Errorf("NaN batch: error %v, want a divergence error", err)
	}
	if _, err := NewTrainer(testBackend(), model.NewStore(), s, scalarDenoiser(10), TrainConfig{LearningRate: math.Inf(1)}); err == nil {
		t.Error("infinite learning rate accepted")
	}
}
