package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/diffusion"
	"github.com/godiffusion/godiffusion/diffusion/mnist"
	"github.com/godiffusion/godiffusion/diffusion/quality"
	"github.com/godiffusion/godiffusion/experiment"
	"github.com/godiffusion/godiffusion/layers"
	"github.com/godiffusion/godiffusion/scripts/internal/clitest"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Sampler != "ddim" || o.Steps != diffusion.DefaultDDIMSteps || o.n != 500 || o.Eta != 0 || o.checkpoint != "runs/train" {
		t.Errorf("defaults: %+v", o)
	}
	o, err = parseFlags([]string{"--checkpoint", "x.ckpt", "--sampler", "ddpm", "--n", "2", "--batch", "1", "--seed", "-3",
		"--eta", "1", "--classifier-cache", "c.ckpt", "--data", "d", "--variance", "posterior", "--clip"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.checkpoint != "x.ckpt" || o.Sampler != "ddpm" || o.n != 2 || o.batch != 1 || o.seed != -3 || o.Eta != 1 ||
		o.classifierCache != "c.ckpt" || o.data != "d" || o.Variance != "posterior" || !o.Clip {
		t.Errorf("parsed: %+v", o)
	}

	var help bytes.Buffer
	if _, err := parseFlags([]string{"--help"}, &help); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
	for _, want := range []string{"--checkpoint", "--sampler", "--steps", "--eta", "--n", "--seed", "--batch", "--data", "--classifier-cache"} {
		if !strings.Contains(help.String(), strings.TrimPrefix(want, "-")) {
			t.Errorf("--help does not mention %s:\n%s", want, help.String())
		}
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sampler", "euler"}, `--sampler="euler"`},
		{[]string{"--steps", "0"}, "--steps=0"},
		{[]string{"--eta", "1.5"}, "--eta=1.5"},
		{[]string{"--eta", "-0.1"}, "--eta=-0.1"},
		{[]string{"--eta", "NaN"}, "--eta=NaN"},
		{[]string{"--n", "1"}, "--n=1"},
		{[]string{"--n", "60001"}, "--n=60001"},
		{[]string{"--batch", "0"}, "--batch=0"},
		{[]string{"--variance", "big"}, `--variance="big"`},
		{[]string{"--spacing", "leading"}, `--spacing="leading"`},
		{[]string{"--checkpoint", ""}, "--checkpoint must not be empty"},
		{[]string{"--n", "ten"}, "invalid value"},
		{[]string{"--bogus"}, "not defined"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
	// Several errors are reported together.
	_, err = parseFlags([]string{"--n", "0", "--steps", "0"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--n=0") || !strings.Contains(err.Error(), "--steps=0") {
		t.Errorf("two bad flags: %v", err)
	}
}

// TestRunErrors checks that a missing checkpoint or too many DDIM steps fail before anything is
// trained or written.
func TestRunErrors(t *testing.T) {
	b := clitest.MNISTBackend(t)
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache", "classifier.ckpt")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--checkpoint", filepath.Join(dir, "nothing")}, "no such file"},
		{[]string{"--checkpoint", dir}, "no checkpoint in"},
		{[]string{"--checkpoint", writeTinyCheckpoint(t, filepath.Join(dir, "run")), "--steps", "41"}, "more steps than the model's T=40"},
	} {
		o, err := parseFlags(append(tc.args, "--classifier-cache", cache), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		err = run(context.Background(), o, b, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Dir(cache)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed run wrote to the classifier cache folder (%v)", err)
	}
}

// writeTinyCheckpoint saves a tiny U-Net (T=40) after one training step, as scripts/train would, and
// returns the run folder.
func writeTinyCheckpoint(t *testing.T, runDir string) string {
	t.Helper()
	b := clitest.MNISTBackend(t)
	meta := &experiment.Meta{Preset: "tiny", UNet: layers.Tiny(), Schedule: diffusion.ScheduleScaledLinear, T: 40,
		Seed: 1, BatchSize: 2, LearningRate: 1e-3}
	schedule, err := meta.BuildSchedule()
	if err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	tr, err := diffusion.NewTrainer(b, store, schedule, experiment.Denoiser(meta.UNet), diffusion.TrainConfig{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	x := tensors.FromFlatDataAndDimensions(make([]float32, 2*32*32), 2, 32, 32, 1)
	if _, err := tr.Step(x); err != nil {
		t.Fatal(err)
	}
	meta.Step = tr.GlobalStep()
	if err := diffusion.SaveCheckpoint(experiment.CheckpointPath(runDir, meta.Step), store, meta); err != nil {
		t.Fatal(err)
	}
	return runDir
}

// TestRunTiny evaluates a tiny checkpoint with a tiny classifier end to end and checks the table.
func TestRunTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	b := clitest.MNISTBackend(t)
	dir := t.TempDir()
	run0 := writeTinyCheckpoint(t, filepath.Join(dir, "run"))
	cache := filepath.Join(dir, "classifier.ckpt")
	o, err := parseFlags([]string{"--checkpoint", run0, "--n", "6", "--batch", "3", "--steps", "2",
		"--classifier-cache", cache}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o.classifierTrain = quality.TrainOptions{Steps: 3, BatchSize: 16, TrainExamples: 256, TestExamples: 100}
	o.refExamples = 300
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), o, b, &stdout, &stderr); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, stderr.String())
	}
	out := stdout.String()
	t.Logf("stdout:\n%s", out)
	for _, want := range []string{"model tiny at step 1", "DDIM", "generated (ddim)", "real MNIST (train)", "noise N(0,1) clipped",
		"Fréchet", "on 100 test images", "of 300 MNIST test images"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !strings.Contains(stderr.String(), "no cached classifier") {
		t.Errorf("stderr does not say the classifier is trained:\n%s", stderr.String())
	}
	if _, err := os.Stat(cache); err != nil {
		t.Errorf("classifier not cached: %v", err)
	}
	// The rows: the set's name, then n = 6.
	for _, name := range []string{"generated (ddim)", "real MNIST (train)", "noise N(0,1) clipped"} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), name); ok {
				f := strings.Fields(rest)
				found = len(f) >= 7 && f[0] == "6"
			}
		}
		if !found {
			t.Errorf("no table row %q with n = 6", name)
		}
	}
}

func TestNoiseAndRealImages(t *testing.T) {
	x := noiseImages(3, 5)
	data := tensors.MustCopyFlatData[float32](x)
	lo, hi := float32(0), float32(0)
	clipped := 0
	for _, v := range data {
		lo, hi = min(lo, v), max(hi, v)
		if v == 1 || v == -1 {
			clipped++
		}
	}
	if lo != -1 || hi != 1 || clipped < len(data)/4 || clipped > len(data)/2 {
		t.Errorf("noise in [%v, %v], %d of %d clipped (want about 32%%)", lo, hi, clipped, len(data))
	}
	if d2 := tensors.MustCopyFlatData[float32](noiseImages(3, 5)); d2[17] != data[17] {
		t.Error("noise not reproducible")
	}
	dir, err := mnist.DefaultDir()
	if err != nil {
		t.Skip(err)
	}
	d, err := mnist.Load(dir, mnist.Test)
	if err != nil {
		t.Fatal(err)
	}
	r := realImages(d, 4, 1)
	if s := r.Shape(); s.Dimensions[0] != 4 || s.Dimensions[1] != 32 || s.Dimensions[3] != 1 {
		t.Errorf("real images shape %s", s)
	}
}
