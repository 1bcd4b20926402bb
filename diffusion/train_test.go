package diffusion

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
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
	return func(scope *model.Scope, x, t, _ *Node) *Node {
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

	// Truncated and bit-flipped files are rejected as corrupt, leaving the store untouched. The
	// flipped byte is the last of the variable's values, just before the 4-byte CRC-32 trailer, which
	// is left intact: only the checksum can tell.
	flipped := append([]byte{}, raw...)
	flipped[len(flipped)-5] ^= 0x01
	for name, tc := range map[string]struct {
		data    []byte
		wantMsg string
	}{
		"truncated": {raw[:len(raw)-7], "checksum mismatch"},
		"flipped":   {flipped, "checksum mismatch"},
		"not-ckpt":  {[]byte("hello world, definitely not a checkpoint"), "bad magic"},
	} {
		bad := filepath.Join(dir, name)
		_ = os.WriteFile(bad, tc.data, 0o644)
		fresh := model.NewStore()
		err := LoadCheckpoint(bad, fresh, nil)
		if !errors.Is(err, ErrCorruptCheckpoint) {
			t.Errorf("%s: error %v, want ErrCorruptCheckpoint", name, err)
		} else if msg := err.Error(); !strings.Contains(msg, tc.wantMsg) || !strings.Contains(msg, bad) {
			t.Errorf("%s: error %q, want it to name the file and say %q", name, msg, tc.wantMsg)
		}
		if fresh.NumVariables() != 0 {
			t.Errorf("%s: failed load created %d variables", name, fresh.NumVariables())
		}
	}
	// The flipped byte is a value: with the checksum recomputed, the file loads, with another w.
	resealed := binary.LittleEndian.AppendUint32(flipped[:len(flipped)-4:len(flipped)-4], crc32.ChecksumIEEE(flipped[:len(flipped)-4]))
	resealedPath := filepath.Join(dir, "resealed")
	_ = os.WriteFile(resealedPath, resealed, 0o644)
	fresh := model.NewStore()
	if err := LoadCheckpoint(resealedPath, fresh, nil); err != nil {
		t.Fatalf("the flipped file with its checksum recomputed: %v", err)
	}
	if w := tensors.MustCopyFlatData[float32](fresh.GetVariable("/model/w").MustValue()); w[0] != 1 || w[1] != 2 || w[2] == 3 {
		t.Errorf("the flipped file with its checksum recomputed holds w = %v, want 1, 2 and not 3", w)
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
	for _, want := range []string{"/model/w", "(Float32)[3]", "(Float32)[2]", "another model configuration"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
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

// TestEMATracksWeights checks the moving average kept by the Trainer against the recursion
// avg_n = d_n avg_(n-1) + (1 - d_n) w_n, d_n = min(D, (n-1)/(n+9)), computed on the host from the
// weights read after each step; then UseEMAWeights swaps the average in.
func TestEMATracksWeights(t *testing.T) {
	const T, decay = 10, 0.5 // A small D so that the cap is reached within the steps run.
	s, _ := ScheduleByName(ScheduleLinear, T)
	store := model.NewStore()
	tr, err := NewTrainer(testBackend(), store, s, scalarDenoiser(T), TrainConfig{LearningRate: 0.05, Seed: 5, EMADecay: decay})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var avg []float64
	var last []float32
	for n := 1; n <= 12; n++ {
		if _, err := tr.Step(gaussianBatch(rng, 16, 2, 0.5)); err != nil {
			t.Fatal(err)
		}
		w, _ := tensors.CopyFlatData[float32](store.GetVariable("/model/gain").MustValue())
		d := min(decay, float64(n-1)/float64(n+9))
		if avg == nil {
			avg = make([]float64, len(w))
		}
		for i := range w {
			avg[i] = d*avg[i] + (1-d)*float64(w[i])
		}
		got, _ := tensors.CopyFlatData[float32](store.GetVariable("/ema/model/gain").MustValue())
		for i := range got {
			if math.Abs(float64(got[i])-avg[i]) > 1e-6 {
				t.Fatalf("step %d: average[%d] = %g, want %g", n, i, got[i], avg[i])
			}
		}
		if n == 1 && !slices.Equal(got, w) {
			t.Fatalf("after the first step the average %v must equal the weights %v", got, w)
		}
		last = w
	}
	if slices.Equal(last, f32(avg)) {
		t.Fatal("the average equals the last weights: the test cannot tell them apart")
	}
	ok, err := UseEMAWeights(store)
	if err != nil || !ok {
		t.Fatalf("UseEMAWeights = %v, %v", ok, err)
	}
	got, _ := tensors.CopyFlatData[float32](store.GetVariable("/model/gain").MustValue())
	if maxAbsDiff(got, avg) > 1e-6 {
		t.Fatalf("after UseEMAWeights the weights are %v, want the average %v", got, avg)
	}
	// A store without averages is left alone.
	if ok, err := UseEMAWeights(model.NewStore()); ok || err != nil {
		t.Fatalf("UseEMAWeights on an empty store = %v, %v", ok, err)
	}
}

func f32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func maxAbsDiff(a []float32, b []float64) float64 {
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(float64(a[i])-b[i]))
	}
	return m
}

// TestMinSNRWeights checks the weights of every objective against their definition, and the weighted
// loss against a host computation of mean(w[t] (target - output)²).
func TestMinSNRWeights(t *testing.T) {
	s, _ := ScheduleByName(ScheduleCosine, 50)
	const gamma = 5.0
	for _, pred := range Predictions {
		w := MinSNRWeights(s, gamma, pred)
		sawBoth := [2]bool{}
		for i, ab := range s.AlphaBars {
			snr := ab / (1 - ab)
			want := 1.0 // min(SNR, γ) / SNR for ε ...
			switch pred {
			case PredictV:
				want = snr / (snr + 1) // ... min(SNR, γ) / (SNR + 1) for v ...
			case PredictX0:
				want = snr // ... min(SNR, γ) for x₀.
			}
			if snr > gamma {
				want *= gamma / snr
				sawBoth[0] = true
			} else {
				sawBoth[1] = true
			}
			if math.Abs(w[i]-want) > 1e-12*max(1, want) || w[i] <= 0 || w[i] > max(1, gamma) {
				t.Fatalf("%s: w[%d] = %g, want %g (SNR %g)", pred, i, w[i], want, snr)
			}
		}
		if !sawBoth[0] || !sawBoth[1] {
			t.Fatal("the schedule should have SNRs on both sides of gamma")
		}

		// A fixed "denoiser" output 0.5 x_t makes the loss a host-computable function of x0, t and ε.
		half := func(scope *model.Scope, x, t, _ *Node) *Node { return MulScalar(x, 0.5) }
		x0 := []float32{0.3, -0.7, 0.9, 0.1}
		eps := []float32{1.2, -0.4, 0.5, -2}
		ts := []int32{0, 7, 30, 49}
		exec := MustNewExec(testBackend(), func(x, e, tt *Node) *Node {
			return WeightedLoss(nil, s, half, pred, x, tt, e, nil, w)
		})
		got := exec.MustCall(tensors.FromFlatDataAndDimensions(x0, 4, 1, 1, 1), tensors.FromFlatDataAndDimensions(eps, 4, 1, 1, 1), ts)[0].Value().(float32)
		want := 0.0
		for i := range x0 {
			a, b := s.SqrtAlphaBars[ts[i]], s.SqrtOneMinusABar[ts[i]]
			xt := a*float64(x0[i]) + b*float64(eps[i])
			target := float64(eps[i])
			switch pred {
			case PredictV:
				target = a*float64(eps[i]) - b*float64(x0[i])
			case PredictX0:
				target = float64(x0[i])
			}
			d := target - 0.5*xt
			want += w[ts[i]] * d * d / 4
		}
		if math.Abs(float64(got)-want) > 1e-5*math.Max(1, want) {
			t.Fatalf("%s: weighted loss %g, want %g", pred, got, want)
		}
	}
}

// labeledDenoiser is scalarDenoiser plus a learned offset per label (row classes: no label).
func labeledDenoiser(T, classes int) Denoiser {
	gains := scalarDenoiser(T)
	return func(scope *model.Scope, x, t, labels *Node) *Node {
		off := scope.WithInitializer(initializer.Zero).VariableWithShape("offset", shapes.Make(dtypes.Float32, classes+1))
		perLabel := Gather(off.NodeValue(x.Graph()), InsertAxes(labels, -1))
		return Add(gains(scope, x, t, nil), Reshape(perLabel, t.Shape().Dimensions[0], 1, 1, 1))
	}
}

// TestShardedStepMatchesSingleGraph trains the same model with the single-graph step and with
// the batch cut into 2 and 3 concurrent shards (uneven for a batch of 5): losses, weights, Adam
// moments, moving averages and the random state must agree up to float rounding; unconditional,
// and class-conditional with label dropout.
func TestShardedStepMatchesSingleGraph(t *testing.T) {
	for _, classes := range []int{0, 3} {
		t.Run(fmt.Sprintf("classes=%d", classes), func(t *testing.T) { testShardedStep(t, classes) })
	}
}

func testShardedStep(t *testing.T, classes int) {
	const T = 10
	s, _ := ScheduleByName(ScheduleLinear, T)
	train := func(parallel int) ([]float64, *model.Store) {
		store := model.NewStore()
		cfg := TrainConfig{LearningRate: 0.05, Seed: 9, EMADecay: 0.9, MinSNRGamma: 2, Parallel: parallel}
		denoise := scalarDenoiser(T)
		if classes > 0 {
			cfg.Classes, cfg.LabelDropout, denoise = classes, 0.3, labeledDenoiser(T, classes)
		}
		tr, err := NewTrainer(testBackend(), store, s, denoise, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if (tr.sharded != nil) != (parallel > 1) {
			t.Fatalf("Parallel %d: sharded step %v", parallel, tr.sharded != nil)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		var losses []float64
		for range 4 {
			x := gaussianBatch(rng, 5, 3, 0.5)
			step := tr.Step
			if classes > 0 {
				step = func(x *tensors.Tensor) (float64, error) { return tr.StepWithLabels(x, []int32{0, 1, 2, 0, 1}) }
			}
			loss, err := step(x)
			if err != nil {
				t.Fatal(err)
			}
			losses = append(losses, loss)
		}
		if tr.GlobalStep() != 4 {
			t.Fatalf("Parallel %d: global step %d, want 4", parallel, tr.GlobalStep())
		}
		return losses, store
	}
	wantLosses, want := train(1)
	for _, parallel := range []int{2, 3} {
		losses, got := train(parallel)
		for i := range losses {
			if math.Abs(losses[i]-wantLosses[i]) > 1e-5*math.Max(1, math.Abs(wantLosses[i])) {
				t.Errorf("Parallel %d: loss %d = %g, single graph %g", parallel, i, losses[i], wantLosses[i])
			}
		}
		n := 0
		for v := range want.IterVariables() {
			gv := got.GetVariable(v.Path())
			if gv == nil {
				t.Fatalf("Parallel %d: variable %s missing", parallel, v.Path())
			}
			a, b := v.MustValue(), gv.MustValue()
			if !a.Shape().Equal(b.Shape()) {
				t.Fatalf("Parallel %d: %s shaped %s, want %s", parallel, v.Path(), b.Shape(), a.Shape())
			}
			if a.DType() == dtypes.Float32 {
				av, _ := tensors.CopyFlatData[float32](a)
				bv, _ := tensors.CopyFlatData[float32](b)
				for i := range av {
					if math.Abs(float64(av[i]-bv[i])) > 1e-5*math.Max(1, math.Abs(float64(av[i]))) {
						t.Fatalf("Parallel %d: %s[%d] = %g, single graph %g", parallel, v.Path(), i, bv[i], av[i])
					}
				}
			} else if !a.Equal(b) {
				t.Errorf("Parallel %d: %s = %v, single graph %v", parallel, v.Path(), b, a)
			}
			n++
		}
		if n < 6 { // gain, its EMA, 2 Adam moments, counters, global step, RNG state...
			t.Errorf("only %d variables compared", n)
		}
	}
}
