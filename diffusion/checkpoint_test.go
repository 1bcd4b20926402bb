package diffusion

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/checkpoint"
)

// TestCheckpointToGoMLX checks what the package documentation says of GoMLX's checkpoints: GoMLX's
// checkpoint package does not read a SaveCheckpoint file (nor its run folder), and a checkpoint
// loaded with LoadCheckpoint and saved with GoMLX's checkpoint.Handler reads back into a store with
// every variable's value, the global step in the file name, and the metadata kept as a parameter.
func TestCheckpointToGoMLX(t *testing.T) {
	const T = 10
	s, _ := LinearSchedule(T, 0.05, 0.5)
	store := model.NewStore()
	tr, err := NewTrainer(testBackend(), store, s, scalarDenoiser(T), TrainConfig{LearningRate: 0.01, Seed: 3, EMADecay: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3 {
		if _, err := tr.Step(gaussianBatch(rng, 8, 4, 0.3)); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	ours := filepath.Join(dir, "run", "step-3.ckpt")
	if err := SaveCheckpoint(ours, store, map[string]string{"preset": "scalar"}); err != nil {
		t.Fatal(err)
	}
	if _, err := checkpoint.Load(model.NewStore()).Dir(filepath.Dir(ours)).Done(); err == nil || !strings.Contains(err.Error(), "no checkpoints found") {
		t.Errorf("GoMLX's checkpoint.Load on a folder of our checkpoints: %v, want 'no checkpoints found'", err)
	}

	// The conversion the package documentation describes.
	loaded := model.NewStore()
	var meta map[string]string
	if err := LoadCheckpoint(ours, loaded, &meta); err != nil {
		t.Fatal(err)
	}
	metaJSON, _ := json.Marshal(meta)
	loaded.SetParam("/godiffusion_meta", string(metaJSON)) // GoMLX's checkpoints keep parameters, not our metadata.
	gomlxDir := filepath.Join(dir, "gomlx")
	h, err := checkpoint.Build(loaded).Dir(gomlxDir).Done()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Save(); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(gomlxDir, "checkpoint-*-step-00000003.json"))
	if len(names) != 1 {
		entries, _ := os.ReadDir(gomlxDir)
		t.Errorf("GoMLX checkpoint files %v, want one checkpoint-*-step-00000003.json", entries)
	}

	back := model.NewStore()
	if _, err := checkpoint.Load(back).Dir(gomlxDir).Immediate().Done(); err != nil {
		t.Fatal(err)
	}
	if back.NumVariables() != store.NumVariables() {
		t.Errorf("GoMLX read %d variables, the store had %d", back.NumVariables(), store.NumVariables())
	}
	for v := range store.IterVariables() {
		bv := back.GetVariable(v.Path())
		if bv == nil {
			t.Errorf("variable %s missing in the GoMLX checkpoint", v.Path())
			continue
		}
		if a, b := v.MustValue(), bv.MustValue(); !a.Equal(b) {
			t.Errorf("variable %s: %v after the round trip, was %v", v.Path(), b, a)
		}
	}
	if p, ok := back.GetParam("/godiffusion_meta"); !ok || p != `{"preset":"scalar"}` {
		t.Errorf("metadata parameter lost: %v, %v", p, ok)
	}
}
