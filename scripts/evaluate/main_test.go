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
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/diffusion"
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
	if o.Sampler != "ddim" || o.Steps != diffusion.DefaultDDIMSteps || o.n != 500 || o.Eta != 0 || o.checkpoint != "runs/train" ||
		o.Digit != "" || o.Guidance != experiment.DefaultGuidance || o.guidanceTable || o.inversion ||
		!slices.Equal(o.scales, []float64{0, 1, 2, 3, 5}) || !slices.Equal(o.invSteps, []int{5, 10, 20, 50, 100, 200}) {
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
	o, err = parseFlags([]string{"--guidance-table", "--guidance-scales", " 0, 1.5 ,7", "--inversion", "--inversion-steps", "2,20"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !o.guidanceTable || !o.inversion || !slices.Equal(o.scales, []float64{0, 1.5, 7}) || !slices.Equal(o.invSteps, []int{2, 20}) {
		t.Errorf("modes: %+v", o)
	}
	if o, err = parseFlags([]string{"--digit", "7", "--guidance", "1.5"}, io.Discard); err != nil || o.Digit != "7" || o.Guidance != 1.5 {
		t.Errorf("--digit 7 --guidance 1.5: %+v, %v", o, err)
	}

	var help bytes.Buffer
	if _, err := parseFlags([]string{"--help"}, &help); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
	for _, want := range []string{"--checkpoint", "--sampler", "--sample-steps", "--eta", "--n", "--seed", "--batch", "--data", "--classifier-cache",
		"--digit", "--guidance", "--guidance-table", "--guidance-scales", "--inversion", "--inversion-steps"} {
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
		{[]string{"--digit", "x"}, `--digit="x"`},
		{[]string{"--guidance", "101"}, "--guidance=101"},
		{[]string{"--guidance-table", "--guidance-scales", "0,x"}, `--guidance-scales="0,x": "x" is not a number`},
		{[]string{"--guidance-table", "--guidance-scales", "0,101"}, "w=101 must lie in [0, 100]"},
		{[]string{"--guidance-table", "--guidance-scales", "-1"}, "w=-1 must lie in [0, 100]"},
		{[]string{"--guidance-table", "--guidance-scales", "NaN"}, "w=NaN must lie in [0, 100]"},
		{[]string{"--guidance-table", "--guidance-scales", "1,,2"}, `--guidance-scales="1,,2": empty entry`},
		{[]string{"--guidance-table", "--guidance-scales", ""}, `--guidance-scales="": empty entry`},
		{[]string{"--inversion", "--inversion-steps", "5,0"}, `--inversion-steps="5,0": 0 steps: each count must be >= 1`},
		{[]string{"--inversion", "--inversion-steps", "5,2.5"}, `"2.5" is not an integer`},
		{[]string{"--guidance-scales", "1"}, "--guidance-scales is only read by --guidance-table"},
		{[]string{"--inversion-steps", "5"}, "--inversion-steps is only read by --inversion"},
		{[]string{"--guidance-table", "--digit", "7"}, "--digit chooses the standard table's samples"},
		{[]string{"--inversion", "--guidance", "2"}, "--guidance chooses the standard table's samples"},
		{[]string{"--inversion", "--n", "10001"}, "--n=10001: --inversion takes at most the 10000 MNIST test images"},
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
	tiny := writeTinyCheckpoint(t, filepath.Join(dir, "run"), 0)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--checkpoint", filepath.Join(dir, "nothing")}, "no such file"},
		{[]string{"--checkpoint", dir}, "no checkpoint in"},
		{[]string{"--checkpoint", tiny, "--sample-steps", "41"}, "more steps than the model's T=40"},
		{[]string{"--checkpoint", tiny, "--digit", "7"}, "--digit=7: the checkpoint's model is unconditional; train a class-conditional one with train --classes"},
		{[]string{"--checkpoint", tiny, "--guidance-table"}, "--guidance-table needs a class-conditional model of the 10 digits, the checkpoint's has 0 classes"},
		{[]string{"--checkpoint", tiny, "--guidance-table"}, "train --classes"},
		{[]string{"--checkpoint", tiny, "--inversion", "--inversion-steps", "40,41"}, `--inversion-steps="40,41": 41 steps exceed the model's T=40`},
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
// returns the run folder. classes > 0 makes it class-conditional (train --classes).
func writeTinyCheckpoint(t *testing.T, runDir string, classes int) string {
	t.Helper()
	b := clitest.MNISTBackend(t)
	meta := &experiment.Meta{Preset: "tiny", UNet: layers.Tiny(), Schedule: diffusion.ScheduleScaledLinear, T: 40,
		Seed: 1, BatchSize: 2, LearningRate: 1e-3}
	if classes > 0 {
		meta.UNet.Classes, meta.LabelDropout = classes, diffusion.DefaultLabelDropout
	}
	schedule, err := meta.BuildSchedule()
	if err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	tr, err := diffusion.NewTrainer(b, store, schedule, experiment.Denoiser(meta.UNet),
		diffusion.TrainConfig{Seed: 1, Classes: meta.UNet.Classes, LabelDropout: meta.LabelDropout})
	if err != nil {
		t.Fatal(err)
	}
	x := tensors.FromFlatDataAndDimensions(make([]float32, 2*32*32), 2, 32, 32, 1)
	if classes > 0 {
		_, err = tr.StepWithLabels(x, []int32{0, 1})
	} else {
		_, err = tr.Step(x)
	}
	if err != nil {
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
	run0 := writeTinyCheckpoint(t, filepath.Join(dir, "run"), 0)
	cache := filepath.Join(dir, "classifier.ckpt")
	o, err := parseFlags([]string{"--checkpoint", run0, "--n", "6", "--batch", "3", "--sample-steps", "2",
		"--classifier-cache", cache}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	useTinyClassifier(o)
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
	r := decodeReport(t, stdout.Bytes())
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
}

// useTinyClassifier makes o train (when not cached) a classifier of a few steps and take a Fréchet
// reference of 300 test images, so that tests run in seconds.
func useTinyClassifier(o *options) {
	o.classifierTrain = quality.TrainOptions{Steps: 3, BatchSize: 16, TrainExamples: 256, TestExamples: 100}
	o.refExamples = 300
}

// evaluate parses args (with a tiny classifier), runs the command and returns its stdout and stderr.
func evaluate(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	o, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	useTinyClassifier(o)
	var out, log bytes.Buffer
	if err := run(context.Background(), o, clitest.MNISTBackend(t), &out, &log); err != nil {
		t.Fatalf("%v: %v\nstderr:\n%s", args, err, log.String())
	}
	return out.String(), log.String()
}

// decodeReport decodes the output of --json, which must be one JSON object of known fields.
func decodeReport(t *testing.T, out []byte) report {
	t.Helper()
	var r report
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil || dec.More() {
		t.Fatalf("--json output is not one JSON object (%v):\n%s", err, out)
	}
	t.Logf("--json:\n%s", out)
	return r
}

// tableRows returns the fields of the lines of out that start with one of the keys, by key.
func tableRows(out string, keys ...string) map[string][]string {
	rows := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && slices.Contains(keys, f[0]) {
			rows[f[0]] = f[1:]
		}
	}
	return rows
}

// TestConditional evaluates a tiny class-conditional checkpoint: the standard table with --digit and
// --guidance, and the guidance table, as text and JSON.
func TestConditional(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	dir := t.TempDir()
	ckpt := writeTinyCheckpoint(t, filepath.Join(dir, "run"), 10)
	common := []string{"--checkpoint", ckpt, "--n", "10", "--batch", "10", "--sample-steps", "2", "--classifier-cache", filepath.Join(dir, "clf.ckpt")}

	out, _ := evaluate(t, append(common, "--digit", "7", "--guidance", "2")...)
	t.Logf("stdout:\n%s", out)
	for _, want := range []string{"10 classes", "digit 7 at guidance 2", "generated (ddim, w=2)", "real MNIST (train)"} {
		if !strings.Contains(out, want) {
			t.Errorf("standard table: output lacks %q", want)
		}
	}
	out, _ = evaluate(t, append(common, "--digit", "7", "--guidance", "2", "--json")...)
	if r := decodeReport(t, []byte(out)); r.Conditioning == nil || *r.Conditioning != (conditioningInfo{Digit: "7", Guidance: 2}) ||
		r.Scores == nil || r.Scores.Generated.Images != "generated (ddim, w=2)" || r.GuidanceTable != nil || r.Inversion != nil {
		t.Errorf("standard table --json: conditioning %+v, scores %+v", r.Conditioning, r.Scores)
	}

	scales := []string{"0", "1", "3.5"}
	tableArgs := append(common, "--guidance-table", "--guidance-scales", strings.Join(scales, ","))
	out, _ = evaluate(t, tableArgs...)
	t.Logf("stdout:\n%s", out)
	if strings.Contains(out, "real MNIST") || !strings.Contains(out, "guidance table at w = 0,1,3.5") {
		t.Errorf("the guidance table run prints the standard table or no log line:\n%s", out)
	}
	rows := tableRows(out, scales...)
	for _, w := range scales {
		// 10 digits, mean, p>=0.9, Fréchet, seconds.
		f := rows[w]
		if len(f) != 14 {
			t.Errorf("w=%s: row %q, want 14 values", w, f)
			continue
		}
		for i, cell := range f[:11] {
			if a, err := strconv.ParseFloat(cell, 64); err != nil || a < 0 || a > 1 {
				t.Errorf("w=%s: accuracy %d is %q, not in [0, 1]", w, i, cell)
			}
		}
	}

	out, _ = evaluate(t, append(tableArgs, "--json")...)
	r := decodeReport(t, []byte(out))
	if len(r.GuidanceTable) != len(scales) || r.Scores != nil || r.Inversion != nil || r.Conditioning != nil || r.Sampler == nil ||
		r.Classifier == nil || r.N != 10 {
		t.Fatalf("--guidance-table --json: %+v", r)
	}
	for i, g := range r.GuidanceTable {
		if want, _ := strconv.ParseFloat(scales[i], 64); g.W != want {
			t.Errorf("row %d: w=%g, want %g", i, g.W, want)
		}
		values := append(slices.Clone(g.AccuracyPerDigit), g.Accuracy, g.ConfidentFraction)
		if len(g.AccuracyPerDigit) != 10 || slices.ContainsFunc(values, func(a jsonFloat) bool { return !(a >= 0 && a <= 1) }) {
			t.Errorf("w=%g: accuracies %v, confident fraction %v: want 10 and all in [0, 1]", g.W, g.AccuracyPerDigit, g.ConfidentFraction)
		}
		if fd := float64(g.FrechetDistance); math.IsNaN(fd) || fd <= 0 || g.Seconds <= 0 {
			t.Errorf("w=%g: Fréchet distance %v, %vs", g.W, fd, g.Seconds)
		}
	}
}

// TestInversion runs the DDIM inversion round trip on tiny models, unconditional and conditional:
// one row per step count with finite values, and no classifier.
func TestInversion(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	for _, classes := range []int{0, 10} {
		t.Run(fmt.Sprintf("classes=%d", classes), func(t *testing.T) {
			dir := t.TempDir()
			cache := filepath.Join(dir, "clf.ckpt")
			args := []string{"--checkpoint", writeTinyCheckpoint(t, filepath.Join(dir, "run"), classes), "--inversion",
				"--inversion-steps", "2,20", "--n", "3", "--batch", "2", "--classifier-cache", cache}
			out, _ := evaluate(t, args...)
			t.Logf("stdout:\n%s", out)
			rows := tableRows(out, "2", "20")
			for _, steps := range []string{"2", "20"} {
				f := rows[steps] // RMSE, PSNR, noise std, seconds.
				if len(f) != 4 {
					t.Errorf("steps %s: row %q, want 4 values", steps, f)
				}
				for _, cell := range f {
					if v, err := strconv.ParseFloat(cell, 64); err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
						t.Errorf("steps %s: %q is not a finite number", steps, cell)
					}
				}
			}
			out, _ = evaluate(t, append(args, "--json")...)
			r := decodeReport(t, []byte(out))
			if len(r.Inversion) != 2 || r.Inversion[0].Steps != 2 || r.Inversion[1].Steps != 20 || r.Sampler != nil || r.Classifier != nil ||
				r.Scores != nil || r.GuidanceTable != nil {
				t.Fatalf("--inversion --json: %+v", r)
			}
			for _, row := range r.Inversion {
				// A null (NaN or infinite) decodes as 0.
				if !(row.RMSE > 0 && row.NoiseStd > 0 && row.PSNR != 0 && row.Seconds > 0) ||
					math.Abs(float64(row.PSNR)-20*math.Log10(2/float64(row.RMSE))) > 1e-9 {
					t.Errorf("steps %d: %+v", row.Steps, row)
				}
			}
			if _, err := os.Stat(cache); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("--inversion trained a classifier (%v)", err)
			}
		})
	}
}

func TestReconstructionError(t *testing.T) {
	// Errors 0, 0.8: MSE 0.32, RMSE sqrt(0.32); PSNR 20 log10(2/sqrt(0.32)) = 10 log10(12.5).
	rmse, psnr := reconstructionError([]float32{0.5, -0.5}, []float32{0.5, 0.3})
	if math.Abs(rmse-0.565685424949238) > 1e-6 || math.Abs(psnr-10.969100130080564) > 1e-5 {
		t.Errorf("RMSE %v, PSNR %v dB; want 0.5657, 10.969", rmse, psnr)
	}
	// Every pixel off by 1: RMSE 1, PSNR 20 log10(2).
	if rmse, psnr := reconstructionError([]float32{-1, 1, 0}, []float32{0, 0, 1}); rmse != 1 || math.Abs(psnr-6.020599913279624) > 1e-9 {
		t.Errorf("RMSE %v, PSNR %v dB; want 1, 6.0206", rmse, psnr)
	}
	if rmse, psnr := reconstructionError([]float32{0.25}, []float32{0.25}); rmse != 0 || !math.IsInf(psnr, 1) {
		t.Errorf("exact: RMSE %v, PSNR %v dB; want 0, +Inf", rmse, psnr)
	}
	if s := stdDev([]float32{1, 3, 1, 3}); s != 1 {
		t.Errorf("stdDev(1, 3, 1, 3) = %v, want 1", s)
	}
}

func TestDigitAccuracy(t *testing.T) {
	asked := []int{0, 1, 2, 0, 1, 2, 0}
	predicted := []int{0, 1, 5, 3, 1, 2, 0}
	perDigit, overall := digitAccuracy(asked, predicted)
	want := []float64{2. / 3, 1, 0.5}
	for d, a := range perDigit {
		if d < len(want) && math.Abs(a-want[d]) > 1e-12 || d >= len(want) && !math.IsNaN(a) {
			t.Errorf("digit %d: accuracy %v", d, a)
		}
	}
	if math.Abs(overall-5./7) > 1e-12 {
		t.Errorf("overall accuracy %v, want 5/7", overall)
	}
}

// TestPrintTables checks the text tables' layout and that NaN prints as "-".
func TestPrintTables(t *testing.T) {
	var b strings.Builder
	acc := make([]jsonFloat, 10)
	acc[3] = jsonFloat(math.NaN())
	if err := printGuidanceTable(&b, []guidanceRow{{W: 1.5, AccuracyPerDigit: acc, Accuracy: 0.25, ConfidentFraction: 0.5,
		FrechetDistance: 12.345, Seconds: 2}}); err != nil {
		t.Fatal(err)
	}
	if err := printInversionTable(&b, []inversionRow{{Steps: 7, RMSE: 0.5, PSNR: 12.04, NoiseStd: 0.99, Seconds: 1.25}}); err != nil {
		t.Fatal(err)
	}
	rows := tableRows(b.String(), "1.5", "7")
	if got := strings.Join(rows["1.5"], " "); got != "0.00 0.00 0.00 - 0.00 0.00 0.00 0.00 0.00 0.00 0.250 50.0% 12.35 2.0" {
		t.Errorf("guidance row %q\n%s", got, b.String())
	}
	if got := strings.Join(rows["7"], " "); got != "0.5000 12.04 0.990 1.2" {
		t.Errorf("inversion row %q\n%s", got, b.String())
	}
}
