package main

import (
	"context"
	"errors"
	"flag"
	"image/gif"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/godiffusion/godiffusion/diffusion"
	"github.com/godiffusion/godiffusion/diffusion/mnist"
	"github.com/godiffusion/godiffusion/experiment"
	"github.com/godiffusion/godiffusion/kernel"
	"github.com/godiffusion/godiffusion/scripts/internal/cli"
	"github.com/godiffusion/godiffusion/scripts/internal/clitest"
)

// tinyRun returns flags for a small, fast run of the tiny preset.
func tinyRun(t *testing.T, out string, extra ...string) *options {
	t.Helper()
	args := append([]string{"--preset", "tiny", "--batch", "2", "--steps", "6", "--ckpt-every", "2",
		"--ddpm-samples", "0", "--ddim-samples", "0", "--dpm-samples", "0", "--minutes", "0", "--timesteps", "40", "--sample-steps", "4", "--out", out}, extra...)
	o, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestResumeMatchesUninterrupted kills a run (context cancelled, as Ctrl-C does) after step 3,
// resumes it, and compares the final variables with those of an uninterrupted run.
func TestResumeMatchesUninterrupted(t *testing.T) {
	b := clitest.MNISTBackend(t)
	dir := t.TempDir()
	straight, broken := filepath.Join(dir, "straight"), filepath.Join(dir, "broken")
	if err := run(context.Background(), tinyRun(t, straight), b, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	o := tinyRun(t, broken)
	o.afterStep = func(step int64) {
		if step == 3 {
			cancel()
		}
	}
	err := run(ctx, o, b, io.Discard, io.Discard)
	if !errors.Is(err, cli.ErrInterrupted) {
		t.Fatalf("interrupted run returned %v, want cli.ErrInterrupted", err)
	}
	cks, _ := experiment.ListCheckpoints(broken)
	if len(cks) == 0 || !strings.HasSuffix(cks[len(cks)-1], "step-00000003.ckpt") {
		t.Fatalf("interrupted run left checkpoints %v, want the last at step 3", cks)
	}
	// Without --resume the folder is protected.
	if err := run(context.Background(), tinyRun(t, broken), b, io.Discard, io.Discard); err == nil {
		t.Fatal("a new run over existing checkpoints was accepted")
	}
	// Resuming with another preset is refused, naming both.
	err = run(context.Background(), tinyRun(t, broken, "--resume", "--preset", "cpu"), b, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--preset=cpu, but the run") {
		t.Fatalf("resume with another preset: %v", err)
	}
	// Also when given with the old spelling of the flag, named as today.
	err = run(context.Background(), tinyRun(t, broken, "--resume", "--T", "50"), b, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--timesteps=50, but the run") {
		t.Fatalf("resume with another T: %v", err)
	}
	if err := run(context.Background(), tinyRun(t, broken, "--resume"), b, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}

	a, err := experiment.LoadRawModel(straight)
	if err != nil {
		t.Fatal(err)
	}
	r, err := experiment.LoadRawModel(broken)
	if err != nil {
		t.Fatal(err)
	}
	if a.Meta.Step != 6 || r.Meta.Step != 6 || a.Meta.Position != r.Meta.Position {
		t.Fatalf("steps %d/%d, positions %+v/%+v: want both at step 6, same position", a.Meta.Step, r.Meta.Step, a.Meta.Position, r.Meta.Position)
	}
	n, averages := 0, 0
	for v := range a.Store.IterVariables() {
		if strings.HasPrefix(v.Path(), "/"+diffusion.EMAScope+"/") {
			averages++ // The default --ema keeps moving averages; they must resume exactly too.
		}
		va, _ := v.Value()
		rv := r.Store.GetVariable(v.Path())
		if rv == nil {
			t.Fatalf("variable %s missing from the resumed run", v.Path())
		}
		vr, _ := rv.Value()
		if !va.Equal(vr) {
			t.Errorf("variable %s differs between the uninterrupted and the resumed run", v.Path())
		}
		n++
	}
	if n < 10 || averages < 5 {
		t.Errorf("only %d variables (%d moving averages) compared", n, averages)
	}
	// The loss log has one row per step, with no duplicates from the redone part.
	raw, _ := os.ReadFile(filepath.Join(broken, experiment.LossesFile))
	if rows := strings.Count(string(raw), "\n"); rows != 7 {
		t.Errorf("losses.csv has %d lines, want a header and 6 rows:\n%s", rows, raw)
	}
	// Keep: only the newest 3 checkpoints remain.
	if cks, _ := experiment.ListCheckpoints(straight); len(cks) != 3 {
		t.Errorf("%d checkpoints kept, want 3: %v", len(cks), cks)
	}
}

// TestOutputsDecode runs a short job with final samples and checks the pictures it writes.
func TestOutputsDecode(t *testing.T) {
	b := clitest.MNISTBackend(t)
	out := t.TempDir()
	o := tinyRun(t, out, "--steps", "2", "--ddim-samples", "9", "--ddpm-samples", "4", "--dpm-samples", "4")
	if err := run(context.Background(), o, b, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	for name, cols := range map[string]int{"samples_ddim.png": 3, "samples_ddpm.png": 2, "samples_dpm.png": 2} {
		f, err := os.Open(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// 9 images make a 3x3 grid, 4 a 2x2 one, of 32-pixel tiles scaled by GridScale, with padding.
		if w := img.Bounds().Dx(); w < cols*32*experiment.GridScale || w > cols*(32+4)*experiment.GridScale {
			t.Errorf("%s is %d pixels wide", name, w)
		}
	}
	frames := map[string]int{"chain_ddim.gif": 4 + 1, "chain_ddpm.gif": 40/max(1, 40/25) + 1, "chain_dpm.gif": 4 + 1}
	for name, want := range frames {
		f, err := os.Open(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		g, err := gif.DecodeAll(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(g.Image) != want {
			t.Errorf("%s has %d frames, want %d", name, len(g.Image), want)
		}
	}
	for _, name := range []string{"loss.svg", "losses.csv"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Error(err)
		}
	}
}

func TestFlagValidation(t *testing.T) {
	bad := [][]string{
		{"--preset", "huge"},
		{"--schedule", "quadratic"},
		{"--steps", "-5"},
		{"--batch", "0"},
		{"--lr", "-1"},
		{"--timesteps", "1"},
		{"--T", "1"},
		{"--sample-steps", "300"},
		{"--sample-steps", "0"},
		{"--ddim-steps", "300"},
		{"--eta", "1.5"},
		{"--eta", "-0.1"},
		{"--eta", "NaN"},
		{"--ddim-eta", "1.5"},
		{"--label-dropout", "1.5"},
		{"--guidance", "-1"},
		{"--spacing", "leading"},
		{"--ddim-spacing", "leading"},
		{"--sample-every", "-1"},
		{"--keep", "0"},
		{"--minutes", "-1"},
		{"--ddim-samples", "-1"},
		{"--ddpm-samples", "-1"},
		{"--dpm-samples", "-1"},
		{"--prediction", "x_0"},
		{"--prediction", ""},
		{"--no-such-flag"},
		{"extra-argument"},
	}
	for _, args := range bad {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	if _, err := parseFlags([]string{"--help"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
	if o.preset != defaultPreset || o.steps != defaultSteps || o.minutes != 0 || o.sampleEvery != 0 || o.T != diffusion.DefaultT {
		t.Errorf("defaults %+v", o)
	}
	// The old spellings set the same options as the names train shares with sample and evaluate.
	for _, args := range [][]string{
		{"--timesteps", "50", "--sample-steps", "7", "--eta", "0.5", "--spacing", "trailing"},
		{"--T", "50", "--ddim-steps", "7", "--ddim-eta", "0.5", "--ddim-spacing", "trailing"},
	} {
		o, err := parseFlags(args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if o.T != 50 || o.sampleSteps != 7 || o.eta != 0.5 || o.spacing != "trailing" || !o.set["timesteps"] || !o.set["sample-steps"] {
			t.Errorf("%v: parsed %+v", args, o)
		}
	}
	var help strings.Builder
	_, _ = parseFlags([]string{"--help"}, &help)
	for _, want := range []string{"-timesteps", "-sample-steps", "-sample-every", "-T int\n    \tdeprecated spelling of --timesteps"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, help.String())
		}
	}
}

// TestSampleEvery: --sample-every writes a decodable grid of 16 samples at every N-th step, also
// after a resume, and nothing without it (the other tests).
func TestSampleEvery(t *testing.T) {
	b := clitest.MNISTBackend(t)
	out := t.TempDir()
	var log strings.Builder
	if err := run(context.Background(), tinyRun(t, out, "--steps", "4", "--sample-every", "2"), b, &log, &log); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), tinyRun(t, out, "--steps", "6", "--sample-every", "3", "--resume"), b, &log, &log); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(out, "samples"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"step-00000002.png", "step-00000004.png", "step-00000006.png"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("samples/ holds %v, want %v", names, want)
	}
	w, _ := kernel.GridSize(16, 32, 32, 0, 2, experiment.GridScale) // As experiment.WriteSamples draws 16 images.
	for _, name := range names {
		f, err := os.Open(filepath.Join(out, "samples", name))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if img.Bounds().Dx() != w || img.Bounds().Dy() != w {
			t.Errorf("%s is %v, want a %dx%d grid of 16 images", name, img.Bounds(), w, w)
		}
	}
	if !strings.Contains(log.String(), "Samples at step 4: "+filepath.Join(out, "samples", "step-00000004.png")) {
		t.Errorf("the log does not report the samples:\n%s", log.String())
	}
}

// TestEpochsHaveNoTimeLimit: --epochs alone trains every epoch; a time budget applies only when
// --minutes is given (scripts/train.sh passes --minutes 12, and a later --minutes wins).
func TestEpochsHaveNoTimeLimit(t *testing.T) {
	o, err := parseFlags([]string{"--preset", "tutorial", "--epochs", "10"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.minutes != 0 {
		t.Errorf("--preset tutorial --epochs 10: minutes %g, want 0 (no time limit)", o.minutes)
	}
	perEpoch := mnist.StepsPerEpoch(60000, o.batch, mnist.DropRemainder) // 3,750 at batch 16
	if got, want := o.totalSteps(perEpoch), int64(10*perEpoch); got != want {
		t.Errorf("--epochs 10 at batch %d: %d steps, want %d", o.batch, got, want)
	}
	o, err = parseFlags([]string{"--minutes", "12", "--steps", "50", "--minutes", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.minutes != 3 || o.totalSteps(perEpoch) != 50 {
		t.Errorf("--minutes 12 ... --minutes 3 --steps 50: minutes %g, %d steps; want 3 and 50", o.minutes, o.totalSteps(perEpoch))
	}
}

// TestResumeWithoutCheckpoint fails clearly and writes nothing.
func TestResumeWithoutCheckpoint(t *testing.T) {
	b := clitest.MNISTBackend(t)
	out := filepath.Join(t.TempDir(), "none")
	err := run(context.Background(), tinyRun(t, out, "--resume"), b, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no checkpoint") {
		t.Fatalf("error %v, want 'no checkpoint'", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed --resume created %s", out)
	}
}

// TestTimeBudget stops training when --minutes runs out and keeps a checkpoint of what was done.
func TestTimeBudget(t *testing.T) {
	b := clitest.MNISTBackend(t)
	out := t.TempDir()
	if err := run(context.Background(), tinyRun(t, out, "--minutes", "0.0001"), b, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	m, err := experiment.LoadModel(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Meta.Step < 1 || m.Meta.Step >= 6 {
		t.Errorf("stopped at step %d, want the time budget to end the run early (1 to 5 of 6 steps)", m.Meta.Step)
	}
}

// TestSecondRunOnSameOut: while a process holds --out, train stops at once, naming the holder and
// what to do, and writes nothing; train releases the lock on its error paths too (Ctrl-C and
// errors of TestResumeMatchesUninterrupted run train again on the same folder).
func TestSecondRunOnSameOut(t *testing.T) {
	out := t.TempDir()
	held, err := experiment.LockRun(out)
	if err != nil {
		t.Fatal(err)
	}
	// No backend: train must stop before it needs one.
	err = run(context.Background(), tinyRun(t, out), nil, io.Discard, io.Discard)
	var locked *experiment.LockedError
	if !errors.As(err, &locked) || locked.Holder == nil || locked.Holder.PID != os.Getpid() {
		t.Fatalf("train on a held --out: %v, want a LockedError naming pid %d", err, os.Getpid())
	}
	for _, want := range []string{"process " + strconv.Itoa(os.Getpid()), "wait for it to finish", "another run folder (--out)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if entries, _ := os.ReadDir(out); len(entries) != 1 || entries[0].Name() != experiment.LockFile {
		t.Errorf("the refused run wrote into %s: %v", out, entries)
	}
	if err := held.Unlock(); err != nil {
		t.Fatal(err)
	}
	// A run that fails (nothing to resume) releases the lock it took.
	err = run(context.Background(), tinyRun(t, out, "--resume"), nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no checkpoint") {
		t.Fatalf("--resume of an empty folder: %v, want 'no checkpoint'", err)
	}
	again, err := experiment.LockRun(out)
	if err != nil {
		t.Fatalf("the lock was not released when train failed: %v", err)
	}
	_ = again.Unlock()
}

// TestClassesRun trains a class-conditional tiny model: its checkpoint records the ten classes and
// the label dropout, its final grid is drawn, and resuming without --classes is refused.
func TestClassesRun(t *testing.T) {
	b := clitest.MNISTBackend(t)
	out := filepath.Join(t.TempDir(), "cond")
	o := tinyRun(t, out, "--classes", "--label-dropout", "0.25", "--steps", "2", "--ddim-samples", "10")
	if err := run(context.Background(), o, b, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	m, err := experiment.LoadModel(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Meta.UNet.Classes != 10 || m.Meta.LabelDropout != 0.25 {
		t.Errorf("checkpoint: %d classes, label dropout %g; want 10, 0.25", m.Meta.UNet.Classes, m.Meta.LabelDropout)
	}
	if _, err := os.Stat(filepath.Join(out, "samples_ddim.png")); err != nil {
		t.Error(err)
	}
	err = run(context.Background(), tinyRun(t, out, "--resume", "--classes=false", "--steps", "3"), b, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--classes=false, but the run") {
		t.Errorf("resume without --classes: %v", err)
	}
}
