package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
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
	for _, want := range []string{"--checkpoint", "--sampler", "--sample-steps", "--eta", "--n", "--seed", "--batch", "--data", "--classifier-cache"} {
		if !strings.Contains(help.String(), strings.TrimPrefix(want, "-")) {
			t.Errorf("--help does not mention %s:\n%s", want, help.String())
		}
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sampler", "euler"}, `--sampler="euler"`},
		{[]string{"--sample-steps", "0"}, "--sample-steps=0"},
		{[]string{"--steps", "0"}, "--sample-steps=0"}, // the old spelling
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
	_, err = parseFlags([]string{"--n", "0", "--sample-steps", "0"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--n=0") || !strings.Contains(err.Error(), "--sample-steps=0") {
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
		{[]string{"--checkpoint", writeTinyCheckpoint(t, filepath.Join(dir, "run")), "--sample-steps", "41"}, "more steps than the model's T=40"},
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
	o, err := parseFlags([]string{"--checkpoint", run0, "--n", "6", "--batch", "3", "--sample-steps", "2",
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
	table := map[string][]string{}
	for _, name := range []string{"generated (ddim)", "real MNIST (train)", "noise N(0,1) clipped"} {
		for _, line := range strings.Split(out, "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), name); ok {
				table[name] = strings.Fields(rest)
			}
		}
		if f := table[name]; len(f) != 16 || f[0] != "6" {
			t.Errorf("no table row %q with n = 6 and 10 digit counts: %q", name, f)
		}
	}

	// --json: the same run (same seed, cached classifier) as one JSON object on stdout, the log on stderr.
	o.json = true
	stdout.Reset()
	stderr.Reset()
	if err := run(context.Background(), o, b, &stdout, &stderr); err != nil {
		t.Fatalf("--json: %v\nstderr:\n%s", err, stderr.String())
	}
	var r report
	dec := json.NewDecoder(bytes.NewReader(stdout.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil || dec.More() {
		t.Fatalf("--json output is not one JSON object (%v):\n%s", err, stdout.String())
	}
	t.Logf("--json:\n%s", stdout.String())
	if !strings.Contains(stderr.String(), "evaluate: model tiny at step 1") {
		t.Errorf("--json: the log lines are not on stderr:\n%s", stderr.String())
	}
	if r.Model.Preset != "tiny" || r.Model.Step != 1 || r.Model.T != 40 || r.Model.Schedule != diffusion.ScheduleScaledLinear ||
		r.Sampler.Name != "ddim" || r.Sampler.Steps != 2 || !strings.Contains(r.Sampler.Description, "DDIM") || r.N != 6 ||
		r.Classifier.TestExamples != 100 || r.Classifier.ReferenceImages != 300 || r.ConfidentThreshold != quality.ConfidentThreshold ||
		filepath.Dir(r.Checkpoint) != filepath.Join(run0, experiment.CheckpointDir) {
		t.Errorf("--json: model, sampler or settings wrong: %+v", r)
	}
	for _, tc := range []struct {
		name string
		row  rowScores
	}{{"generated (ddim)", r.Scores.Generated}, {"real MNIST (train)", r.Scores.Real}, {"noise N(0,1) clipped", r.Scores.Noise}} {
		f, s := table[tc.name], tc.row
		if len(f) != 16 || s.Images != tc.name || s.N != 6 || len(s.DigitCounts) != 10 {
			t.Errorf("%s: JSON row %+v", tc.name, s)
			continue
		}
		// The table's numbers, rounded as printed (the two runs may differ by float rounding).
		near := func(what string, got float64, cell string, unit float64) {
			want, err := strconv.ParseFloat(strings.TrimSuffix(cell, "%"), 64)
			if err != nil || math.Abs(got-want) > unit {
				t.Errorf("%s: %s %v in JSON, %q in the table", tc.name, what, got, cell)
			}
		}
		near("confidence", float64(s.Confidence), f[1], 0.0015)
		near("p>=0.9 (percent)", 100*float64(s.ConfidentFraction), f[2], 0.15)
		near("classifier score", float64(s.ClassifierScore), f[4], 0.015)
		near("Fréchet", float64(s.FrechetDistance), f[5], 0.015)
		if f[3] != fmt.Sprintf("%d/10", s.Digits) {
			t.Errorf("%s: digits %d in JSON, %q in the table", tc.name, s.Digits, f[3])
		}
		total := 0
		for c, k := range s.DigitCounts {
			total += k
			if f[6+c] != strconv.Itoa(k) {
				t.Errorf("%s: %d images of digit %d in JSON, %s in the table", tc.name, k, c, f[6+c])
			}
		}
		if total != 6 {
			t.Errorf("%s: the digit counts add up to %d, want 6", tc.name, total)
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
