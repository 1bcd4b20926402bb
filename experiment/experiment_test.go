package experiment

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/diffusion"
	"github.com/godiffusion/godiffusion/layers"
)

// TestLoadModelUsesMovingAverage saves a checkpoint holding a model variable and its moving
// average, and checks that LoadModel samples with the average while LoadRawModel keeps the weights.
func TestLoadModelUsesMovingAverage(t *testing.T) {
	dir := t.TempDir()
	store := model.NewStore()
	w, err := store.CreateVariable("/model/stem/weights", tensors.FromValue([]float32{1, 2, 3}))
	if err != nil {
		t.Fatal(err)
	}
	w.Trainable = true
	avg, err := store.CreateVariable("/"+diffusion.EMAScope+"/model/stem/weights", tensors.FromValue([]float32{0.5, 1.5, 2.5}))
	if err != nil {
		t.Fatal(err)
	}
	avg.Trainable = false
	meta := Meta{Preset: "tiny", UNet: layers.Tiny(), Schedule: diffusion.ScheduleLinear, T: 10, BatchSize: 2, EMADecay: 0.999}
	if err := diffusion.SaveCheckpoint(CheckpointPath(dir, 7), store, meta); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		load func(string) (*Model, error)
		ema  bool
		want []float32
	}{
		{"LoadModel", LoadModel, true, []float32{0.5, 1.5, 2.5}},
		{"LoadRawModel", LoadRawModel, false, []float32{1, 2, 3}},
	} {
		m, err := tc.load(dir)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := tensors.MustCopyFlatData[float32](m.Store.GetVariable("/model/stem/weights").MustValue())
		if m.EMA != tc.ema || len(got) != 3 || got[0] != tc.want[0] || got[1] != tc.want[1] || got[2] != tc.want[2] {
			t.Errorf("%s: EMA %v, weights %v; want %v, %v", tc.name, m.EMA, got, tc.ema, tc.want)
		}
		if m.Meta.EMADecay != 0.999 || m.Meta.Step != 0 {
			t.Errorf("%s: metadata %+v", tc.name, m.Meta)
		}
	}
}

// TestMetaSummary checks the log description, including checkpoints written before the prediction
// was recorded (epsilon).
func TestMetaSummary(t *testing.T) {
	for _, tc := range []struct {
		pred diffusion.Prediction
		want string
	}{
		{"", "cpu at step 7 (scaled-linear, epsilon prediction)"},
		{diffusion.PredictV, "cpu at step 7 (scaled-linear, v prediction)"},
	} {
		m := Meta{Preset: "cpu", Step: 7, Schedule: diffusion.ScheduleScaledLinear, Prediction: tc.pred}
		if got := m.Summary(); got != tc.want {
			t.Errorf("Summary() = %q, want %q", got, tc.want)
		}
	}
}

// TestSnapshotModel: a snapshot samples with the moving average, leaves the training store as it
// was, skips the optimizer's variables and does not follow later changes of the store.
func TestSnapshotModel(t *testing.T) {
	store := model.NewStore()
	create := func(path string, trainable bool, values ...float32) *model.Variable {
		v, err := store.CreateVariable(path, tensors.FromValue(values))
		if err != nil {
			t.Fatal(err)
		}
		v.Trainable = trainable
		return v
	}
	w := create("/model/stem/weights", true, 1, 2, 3)
	create("/"+diffusion.EMAScope+"/model/stem/weights", false, 0.5, 1.5, 2.5)
	create("/AdamOptimizer/model/stem/weights_1st_moment", false, 9, 9, 9)
	meta := Meta{Preset: "tiny", UNet: layers.Tiny(), Schedule: diffusion.ScheduleLinear, T: 10, BatchSize: 2, EMADecay: 0.999}
	m, err := SnapshotModel(meta, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetValue(tensors.FromValue([]float32{7, 7, 7})); err != nil { // Training goes on.
		t.Fatal(err)
	}
	got := tensors.MustCopyFlatData[float32](m.Store.GetVariable("/model/stem/weights").MustValue())
	if !m.EMA || got[0] != 0.5 || got[1] != 1.5 || got[2] != 2.5 {
		t.Errorf("snapshot: EMA %v, weights %v; want the average [0.5 1.5 2.5]", m.EMA, got)
	}
	if m.Store.NumVariables() != 2 || m.Schedule == nil || m.Schedule.T != 10 {
		t.Errorf("snapshot holds %d variables (want 2: weights and average), schedule %v", m.Store.NumVariables(), m.Schedule)
	}
	if orig := tensors.MustCopyFlatData[float32](w.MustValue()); orig[0] != 7 {
		t.Errorf("the training store changed: %v", orig)
	}
}

// TestCheckpointFromEnv resolves $CHECKPOINT relative to a search folder first, then as given,
// and RunDir finds the run folder of a checkpoint.
func TestCheckpointFromEnv(t *testing.T) {
	root := t.TempDir()
	run := filepath.Join(root, "runs", "a")
	store := model.NewStore()
	if _, err := store.CreateVariable("/model/w", tensors.FromValue([]float32{1})); err != nil {
		t.Fatal(err)
	}
	file := CheckpointPath(run, 5)
	if err := diffusion.SaveCheckpoint(file, store, Meta{Preset: "tiny", UNet: layers.Tiny(), Schedule: diffusion.ScheduleLinear, T: 10}); err != nil {
		t.Fatal(err)
	}
	t.Setenv(CheckpointEnv, "")
	if got, err := CheckpointFromEnv(root); got != "" || err != nil {
		t.Errorf("unset: %q, %v", got, err)
	}
	t.Setenv(CheckpointEnv, filepath.Join("runs", "a"))
	if got, err := CheckpointFromEnv(t.TempDir(), root); got != file || err != nil {
		t.Errorf("relative to a search folder: %q, %v; want %q", got, err, file)
	}
	t.Setenv(CheckpointEnv, filepath.Join("runs", "missing"))
	if _, err := CheckpointFromEnv(root); err == nil || !strings.Contains(err.Error(), "$CHECKPOINT") {
		t.Errorf("missing: %v, want an error naming $CHECKPOINT", err)
	}
	for _, p := range []string{file, filepath.Dir(file), run} {
		if got := RunDir(p); got != run {
			t.Errorf("RunDir(%q) = %q, want %q", p, got, run)
		}
	}
}
