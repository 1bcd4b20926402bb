package experiment

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/backend"
	"github.com/godiffusion/godiffusion/diffusion"
	"github.com/godiffusion/godiffusion/diffusion/mnist"
	"github.com/godiffusion/godiffusion/layers"
)

// newTestLoop returns a Loop over 40 random digits in batches of 4 (10 steps per epoch) with a
// one-weight denoiser, writing into a fresh run folder.
func newTestLoop(t *testing.T) *Loop {
	t.Helper()
	b, err := backend.New()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	data := &mnist.Dataset{Split: mnist.Train}
	for range 40 {
		var img [mnist.PixelsPerImage]uint8
		for i := range img {
			img[i] = uint8(rng.IntN(256))
		}
		data.Images = append(data.Images, img)
		data.Labels = append(data.Labels, uint8(rng.IntN(10)))
	}
	batcher, err := mnist.NewBatcher(data, mnist.BatcherConfig{BatchSize: 4, Seed: 3, Size: 32})
	if err != nil {
		t.Fatal(err)
	}
	s, err := diffusion.ScheduleByName(diffusion.ScheduleLinear, 20)
	if err != nil {
		t.Fatal(err)
	}
	denoise := func(scope *model.Scope, x, _, _ *Node) *Node {
		return Mul(scope.VariableWithValue("w", float32(0.5)).NodeValue(x.Graph()), x)
	}
	store := model.NewStore()
	trainer, err := diffusion.NewTrainer(b, store, s, denoise, diffusion.TrainConfig{Seed: 1, Parallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	return &Loop{Out: t.TempDir(), Meta: &Meta{Preset: "tiny", Schedule: diffusion.ScheduleLinear, T: 20, BatchSize: 4},
		Store: store, Trainer: trainer, Batcher: batcher}
}

func checkpointSteps(t *testing.T, dir string) []int64 {
	t.Helper()
	files, err := ListCheckpoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	var steps []int64
	for _, f := range files {
		var m Meta
		if err := diffusion.ReadCheckpointMeta(f, &m); err != nil {
			t.Fatal(err)
		}
		if f != CheckpointPath(dir, m.Step) {
			t.Errorf("checkpoint %s holds step %d", filepath.Base(f), m.Step)
		}
		steps = append(steps, m.Step)
	}
	return steps
}

func historySteps(h []LossRecord) []int {
	var steps []int
	for _, r := range h {
		steps = append(steps, r.Step)
	}
	return steps
}

// TestLoopCheckpointsAndLosses runs 12 steps saving every 5 and keeping 2, then continues the
// run from its files as a resumed run does.
func TestLoopCheckpointsAndLosses(t *testing.T) {
	l := newTestLoop(t)
	l.Steps, l.CheckpointEvery, l.Keep = 12, 5, 2
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := checkpointSteps(t, l.Out); !slices.Equal(got, []int64{10, 12}) {
		t.Errorf("checkpoints of steps %v, want [10 12] (every 5, the last, 2 kept)", got)
	}
	history, err := ReadLosses(l.Out, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := historySteps(history); !slices.Equal(got, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}) {
		t.Errorf("losses.csv steps %v", got)
	}
	if history[9].Epoch != 1 || history[10].Epoch != 2 || math.Abs(history[11].Loss-l.History[11].Loss) > 1e-7*l.History[11].Loss {
		t.Errorf("losses.csv rows %+v, want epochs of 10 steps and the loop's losses %+v", history, l.History)
	}
	if l.Meta.Step != 12 || l.Meta.Position != l.Batcher.Position() {
		t.Errorf("meta step %d position %+v, want 12 and the batcher's %+v", l.Meta.Step, l.Meta.Position, l.Batcher.Position())
	}
	if upTo, _ := ReadLosses(l.Out, 10); len(upTo) != 10 {
		t.Errorf("ReadLosses up to step 10 gave %d rows", len(upTo))
	}

	// Continue: the same folder, the history read back, 3 more steps.
	l.Steps, l.History = 15, history
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := checkpointSteps(t, l.Out); !slices.Equal(got, []int64{12, 15}) {
		t.Errorf("after continuing, checkpoints of steps %v, want [12 15]", got)
	}
	if h, _ := ReadLosses(l.Out, 100); len(h) != 15 {
		t.Errorf("after continuing, losses.csv has %d rows, want 15", len(h))
	}
}

// TestLoopStops checks the two early stops: the deadline and a cancelled context, each saving the
// steps done since the last checkpoint.
func TestLoopStops(t *testing.T) {
	l := newTestLoop(t)
	l.Steps, l.Deadline = 12, time.Now().Add(-time.Second)
	if err := l.Run(context.Background()); !errors.Is(err, ErrDeadline) {
		t.Errorf("past deadline: %v, want ErrDeadline", err)
	}
	if got := checkpointSteps(t, l.Out); len(got) != 0 || l.Trainer.GlobalStep() != 0 {
		t.Errorf("past deadline: %d steps, checkpoints %v; want none", l.Trainer.GlobalStep(), got)
	}

	l.Deadline = time.Time{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l.AfterStep = func(step int64) error {
		if step == 3 {
			cancel()
		}
		return nil
	}
	if err := l.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want context.Canceled", err)
	}
	if got := checkpointSteps(t, l.Out); !slices.Equal(got, []int64{3}) {
		t.Errorf("cancelled after step 3: checkpoints %v, want [3]", got)
	}
	stop := errors.New("stop")
	l.AfterStep = func(int64) error { return stop }
	if err := l.Run(context.Background()); !errors.Is(err, stop) {
		t.Errorf("AfterStep's error: %v", err)
	}
}

// TestConditionalRunRoundTrip trains a class-conditional tiny U-Net for two steps through the Loop
// (the batches' labels), and loads its checkpoint back: the metadata keep the classes and the label
// dropout, and the loaded model samples digits with guidance and refuses an unknown label.
func TestConditionalRunRoundTrip(t *testing.T) {
	l := newTestLoop(t)
	cfg := layers.Tiny()
	cfg.Classes = mnist.NumClasses
	l.Meta = &Meta{Preset: "tiny", UNet: cfg, Schedule: diffusion.ScheduleLinear, T: 20, BatchSize: 4, Seed: 1,
		LearningRate: 1e-3, LabelDropout: 0.2}
	b, err := backend.New()
	if err != nil {
		t.Fatal(err)
	}
	s, _ := l.Meta.BuildSchedule()
	if l.Trainer, err = diffusion.NewTrainer(b, l.Store, s, Denoiser(cfg), l.Meta.TrainConfig()); err != nil {
		t.Fatal(err)
	}
	l.Steps = 2
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	m, err := LoadModel(l.Out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Meta.UNet.Classes != 10 || m.Meta.LabelDropout != 0.2 || m.Meta.Step != 2 {
		t.Fatalf("loaded metadata: %d classes, label dropout %g, step %d; want 10, 0.2, 2", m.Meta.UNet.Classes, m.Meta.LabelDropout, m.Meta.Step)
	}
	if tc := m.Meta.TrainConfig(); tc.Classes != 10 || tc.LabelDropout != 0.2 {
		t.Errorf("TrainConfig of the loaded run: %+v", tc)
	}
	if !strings.Contains(m.Meta.Summary(), "10 classes") {
		t.Errorf("summary %q does not say the model is conditional", m.Meta.Summary())
	}
	gen := m.Generator(b)
	res, err := gen.Sample(diffusion.DDIM{Steps: 2}, diffusion.SampleOptions{N: 2, Labels: []int{3, 8}, Guidance: 2})
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Images.Shape().Dimensions; d[0] != 2 {
		t.Errorf("images %v", d)
	}
	if _, err := gen.Sample(diffusion.DDIM{Steps: 2}, diffusion.SampleOptions{N: 1, Labels: []int{10}, Guidance: 2}); err == nil {
		t.Error("label 10 of a 10-class model accepted")
	}
	// The trainer of an unconditional model refuses labels, and a conditional one needs them.
	if _, err := l.Trainer.Step(tensors.FromShape(shapes.Make(dtypes.Float32, 4, 32, 32, 1))); err == nil || !strings.Contains(err.Error(), "StepWithLabels") {
		t.Errorf("Step on a conditional trainer: %v", err)
	}
}
