package experiment

import (
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
