// Package experiment describes a training run the way the batch commands (scripts/) and the
// notebooks share it: model presets by name, the metadata saved in every checkpoint, the layout of
// a run folder and its lock (one writing process at a time, see LockRun), loading a trained model
// back, and writing its sample pictures.
package experiment

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/diffusion"
	"github.com/godiffusion/godiffusion/diffusion/mnist"
	"github.com/godiffusion/godiffusion/layers"
)

// Presets lists the model presets by name.
var Presets = map[string]func() layers.UNetConfig{
	"tutorial": layers.Tutorial,
	"cpu":      layers.CPU,
	"tiny":     layers.Tiny,
}

// PresetNames returns the preset names, sorted.
func PresetNames() []string {
	names := make([]string, 0, len(Presets))
	for n := range Presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Preset returns the U-Net configuration of a preset name.
func Preset(name string) (layers.UNetConfig, error) {
	f, ok := Presets[name]
	if !ok {
		return layers.UNetConfig{}, fmt.Errorf("unknown preset %q: use one of %s", name, strings.Join(PresetNames(), ", "))
	}
	return f(), nil
}

// Meta is the metadata saved in every checkpoint: enough to rebuild the model and schedule, and to
// resume training exactly where it stopped.
type Meta struct {
	Preset       string            `json:"preset"`
	UNet         layers.UNetConfig `json:"unet"`
	Schedule     string            `json:"schedule"`
	T            int               `json:"T"`
	Seed         int64             `json:"seed"`
	BatchSize    int               `json:"batch_size"`
	LearningRate float64           `json:"learning_rate"`
	// EMADecay and MinSNRGamma are the Trainer's settings (diffusion.TrainConfig); 0 is off.
	EMADecay    float64 `json:"ema_decay,omitempty"`
	MinSNRGamma float64 `json:"min_snr_gamma,omitempty"`
	// Prediction is what the U-Net outputs (diffusion.TrainConfig.Prediction); "" is epsilon.
	Prediction diffusion.Prediction `json:"prediction,omitempty"`
	// LabelDropout is the Trainer's label dropout of a class-conditional model (UNet.Classes > 0).
	LabelDropout float64 `json:"label_dropout,omitempty"`
	// Step is the number of training steps done; Position is the next batch of data.
	Step     int64          `json:"step"`
	Position mnist.Position `json:"position"`
}

// Denoiser returns the U-Net of cfg as a diffusion.Denoiser (class-conditional if cfg.Classes > 0).
func Denoiser(cfg layers.UNetConfig) diffusion.Denoiser {
	return func(scope *model.Scope, x, t, labels *Node) *Node {
		return layers.UNetWithLabels(scope, x, t, labels, cfg)
	}
}

// BuildSchedule builds the schedule the metadata names.
func (m *Meta) BuildSchedule() (*diffusion.Schedule, error) {
	return diffusion.ScheduleByName(m.Schedule, m.T)
}

// Summary describes the model in a few words for log lines, e.g.
// "cpu at step 253 (scaled-linear, v prediction)".
func (m *Meta) Summary() string {
	pred, err := diffusion.ParsePrediction(string(m.Prediction))
	if err != nil {
		pred = m.Prediction
	}
	cond := ""
	if m.UNet.Classes > 0 {
		cond = fmt.Sprintf(", %d classes", m.UNet.Classes)
	}
	return fmt.Sprintf("%s at step %d (%s, %s prediction%s)", m.Preset, m.Step, m.Schedule, pred, cond)
}

// DefaultGuidance is the classifier-free guidance scale the commands and notebooks sample a
// class-conditional model with unless told otherwise (see docs/experiments.md for the choice).
const DefaultGuidance = 2.0

// Labels returns n labels that cycle through the classes, 0, 1, ..., classes-1, 0, ...: in a grid
// of classes columns, each column is one class. It returns nil for an unconditional model (0 classes).
func Labels(n, classes int) []int {
	if classes == 0 {
		return nil
	}
	labels := make([]int, n)
	for i := range labels {
		labels[i] = i % classes
	}
	return labels
}

// TrainConfig returns the Trainer settings the metadata records.
func (m *Meta) TrainConfig() diffusion.TrainConfig {
	return diffusion.TrainConfig{LearningRate: m.LearningRate, Seed: m.Seed, EMADecay: m.EMADecay, MinSNRGamma: m.MinSNRGamma,
		Prediction: m.Prediction, Classes: m.UNet.Classes, LabelDropout: m.LabelDropout}
}

// Model is a trained model loaded from a checkpoint.
type Model struct {
	Meta     Meta
	Store    *model.Store
	Schedule *diffusion.Schedule
	// EMA reports whether the model's weights are the moving average kept during training (see
	// LoadModel) rather than the raw weights of the last step.
	EMA bool
}

// LoadModel reads a checkpoint file, or the latest checkpoint of a run folder (or of its
// checkpoints/ sub-folder), for sampling: if training kept a moving average of the weights
// (Meta.EMADecay > 0) the model uses it; LoadRawModel keeps the last step's weights.
func LoadModel(path string) (*Model, error) {
	m, err := LoadRawModel(path)
	if err != nil {
		return nil, err
	}
	if m.EMA, err = diffusion.UseEMAWeights(m.Store); err != nil {
		return nil, err
	}
	return m, nil
}

// LoadRawModel is LoadModel without the switch to the moving-average weights: the store is the
// checkpoint as saved, which is also what resuming training needs.
func LoadRawModel(path string) (*Model, error) {
	file, err := ResolveCheckpoint(path)
	if err != nil {
		return nil, err
	}
	m := &Model{Store: model.NewStore()}
	if err := diffusion.ReadCheckpointMeta(file, &m.Meta); err != nil {
		return nil, err
	}
	if m.Meta.Preset == "" || m.Meta.UNet.Validate() != nil {
		return nil, fmt.Errorf("checkpoint %s has no valid model configuration: was it written by scripts/train?", file)
	}
	if err := diffusion.LoadCheckpoint(file, m.Store, nil); err != nil {
		return nil, err
	}
	if m.Schedule, err = m.Meta.BuildSchedule(); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", file, err)
	}
	if _, err := diffusion.ParsePrediction(string(m.Meta.Prediction)); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", file, err)
	}
	return m, nil
}

// Generator returns a sampler runner for the model.
func (m *Model) Generator(b compute.Backend) *diffusion.Generator {
	size := m.Meta.UNet.ImageSize
	gen := diffusion.NewGenerator(b, m.Store, m.Schedule, Denoiser(m.Meta.UNet), size, size, 1)
	gen.Prediction = m.Meta.Prediction
	gen.Classes = m.Meta.UNet.Classes
	return gen
}

// ExplainLoadError rewrites GoMLX's error for a variable whose stored shape differs from the one
// the network asks for into one that names the likely cause.
func (m *Model) ExplainLoadError(err error) error {
	if err != nil && strings.Contains(err.Error(), "different shape from original") {
		return fmt.Errorf("the checkpoint's weights do not fit the %s network its metadata describes: it was written for another model configuration (%w)", m.Meta.Preset, err)
	}
	return err
}

// CheckpointDir is the sub-folder of a run folder that holds its checkpoints.
const CheckpointDir = "checkpoints"

// checkpointPrefix and checkpointExt frame the step number in checkpoint file names.
const (
	checkpointPrefix = "step-"
	checkpointExt    = ".ckpt"
)

// CheckpointPath is the file name of the checkpoint at a given step in a run folder.
func CheckpointPath(runDir string, step int64) string {
	return filepath.Join(runDir, CheckpointDir, fmt.Sprintf("%s%08d%s", checkpointPrefix, step, checkpointExt))
}

// ListCheckpoints returns the checkpoint files of a run folder, oldest (lowest step) first.
func ListCheckpoints(runDir string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(runDir, CheckpointDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	type ck struct {
		step int64
		path string
	}
	var cks []ck
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, checkpointPrefix) || !strings.HasSuffix(name, checkpointExt) {
			continue
		}
		step, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(name, checkpointPrefix), checkpointExt), 10, 64)
		if err != nil {
			continue
		}
		cks = append(cks, ck{step, filepath.Join(runDir, CheckpointDir, name)})
	}
	slices.SortFunc(cks, func(a, b ck) int { return int(a.step - b.step) })
	paths := make([]string, len(cks))
	for i, c := range cks {
		paths[i] = c.path
	}
	return paths, nil
}

// ResolveCheckpoint turns a checkpoint file, run folder or checkpoints folder into a checkpoint file.
func ResolveCheckpoint(path string) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("checkpoint %s: %w (train one first with: go run ./scripts/train)", path, err)
	}
	if !info.IsDir() {
		return path, nil
	}
	for _, dir := range []string{path, filepath.Dir(path)} {
		cks, err := ListCheckpoints(dir)
		if err != nil {
			return "", err
		}
		if len(cks) > 0 && (dir == path || filepath.Base(path) == CheckpointDir) {
			return cks[len(cks)-1], nil
		}
	}
	return "", fmt.Errorf("no checkpoint in %s (expected %s/%s*%s; train one with: go run ./scripts/train)",
		path, CheckpointDir, checkpointPrefix, checkpointExt)
}

// PruneCheckpoints deletes all but the newest keep checkpoints of a run folder.
func PruneCheckpoints(runDir string, keep int) error {
	cks, err := ListCheckpoints(runDir)
	if err != nil {
		return err
	}
	for len(cks) > keep {
		if err := os.Remove(cks[0]); err != nil {
			return err
		}
		cks = cks[1:]
	}
	return nil
}

// CheckpointEnv is the environment variable that names a trained model for the notebooks.
const CheckpointEnv = "CHECKPOINT"

// CheckpointFromEnv resolves $CHECKPOINT (a checkpoint file or a run folder, as ResolveCheckpoint
// takes), trying a relative path against each of dirs first (e.g. ".." from the notebooks'
// folder, where scripts/train writes runs/), then as given. It returns "" when CHECKPOINT is unset.
func CheckpointFromEnv(dirs ...string) (string, error) {
	c := os.Getenv(CheckpointEnv)
	if c == "" {
		return "", nil
	}
	if !filepath.IsAbs(c) {
		for _, dir := range dirs {
			if _, err := os.Stat(filepath.Join(dir, c)); err == nil {
				c = filepath.Join(dir, c)
				break
			}
		}
	}
	file, err := ResolveCheckpoint(c)
	if err != nil {
		return "", fmt.Errorf("$%s: %w", CheckpointEnv, err)
	}
	return file, nil
}

// RunDir returns the run folder of a checkpoint file, of a run's checkpoints folder or of a run
// folder itself.
func RunDir(path string) string {
	if info, err := os.Stat(path); err == nil && !info.IsDir() {
		path = filepath.Dir(path)
	}
	if filepath.Base(path) == CheckpointDir {
		path = filepath.Dir(path)
	}
	return path
}
