package main

import (
	"bytes"
	"context"
	"image/gif"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/backend"
	"github.com/godiffusion/godiffusion/diffusion"
	"github.com/godiffusion/godiffusion/experiment"
	"github.com/godiffusion/godiffusion/layers"
)

// writeUntrainedCheckpoint saves a freshly initialised tiny model as scripts/train would.
func writeUntrainedCheckpoint(t *testing.T, dir string, T int) string {
	t.Helper()
	b, err := backend.New()
	if err != nil {
		t.Fatal(err)
	}
	meta := experiment.Meta{Preset: "tiny", UNet: layers.Tiny(), Schedule: diffusion.ScheduleLinear, T: T, Seed: 1, BatchSize: 2}
	s, _ := meta.BuildSchedule()
	store := model.NewStore()
	store.SetParam(model.ParamInitialSeed, int64(1))
	gen := diffusion.NewGenerator(b, store, s, experiment.Denoiser(meta.UNet), 32, 32, 1)
	if _, err := gen.Sample(diffusion.DDIM{Steps: 1}, diffusion.SampleOptions{N: 1}); err != nil { // Creates the variables.
		t.Fatal(err)
	}
	path := experiment.CheckpointPath(dir, 0)
	if err := diffusion.SaveCheckpoint(path, store, meta); err != nil {
		t.Fatal(err)
	}
	return path
}

func parse(t *testing.T, args ...string) *options {
	t.Helper()
	o, err := parseFlags(args, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestSampleSeedsAndGIF(t *testing.T) {
	dir := t.TempDir()
	writeUntrainedCheckpoint(t, dir, 20)
	b, _ := backend.New()
	out := func(name string) string { return filepath.Join(dir, name) }
	var log bytes.Buffer
	for _, name := range []string{"a.png", "b.png"} {
		o := parse(t, "--checkpoint", dir, "--n", "4", "--steps", "3", "--eta", "1", "--seed", "5", "--out", out(name))
		if err := run(context.Background(), o, b, &log, &log); err != nil {
			t.Fatal(err)
		}
	}
	o := parse(t, "--checkpoint", dir, "--n", "4", "--steps", "3", "--eta", "1", "--seed", "6", "--out", out("c.png"),
		"--gif", out("c.gif"), "--gif-images", "2")
	if err := run(context.Background(), o, b, &log, &log); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(out("a.png"))
	bb, _ := os.ReadFile(out("b.png"))
	c, _ := os.ReadFile(out("c.png"))
	if !bytes.Equal(a, bb) {
		t.Error("same seed wrote different images")
	}
	if bytes.Equal(a, c) {
		t.Error("different seeds wrote the same images")
	}
	f, err := os.Open(out("c.gif"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := gif.DecodeAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Image) != 4 { // Starting noise and 3 DDIM steps.
		t.Errorf("GIF has %d frames, want 4", len(g.Image))
	}
}

func TestSampleBadInput(t *testing.T) {
	dir := t.TempDir()
	ckpt := writeUntrainedCheckpoint(t, dir, 20)
	b, _ := backend.New()
	for _, args := range [][]string{
		{"--sampler", "euler"}, {"--sampler", "dpm++", "--eta", "0.5"}, {"--steps", "-1"}, {"--eta", "1.5"}, {"--eta", "-0.1"}, {"--spacing", "leading"}, {"--n", "0"},
		{"--out", "x.jpg"}, {"--gif", "x.png"}, {"--variance", "huge"}, {"stray"},
	} {
		if _, err := parseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"too many DDIM steps", []string{"--checkpoint", dir, "--steps", "21"}, "more steps than"},
		{"missing checkpoint", []string{"--checkpoint", filepath.Join(dir, "nope")}, "train one first"},
		{"corrupt checkpoint", []string{"--checkpoint", corrupt(t, ckpt)}, "corrupt"},
		{"other preset", []string{"--checkpoint", otherPreset(t, ckpt)}, "another model configuration"},
	}
	for _, tc := range cases {
		outPath := filepath.Join(t.TempDir(), "out.png")
		o := parse(t, append(tc.args, "--out", outPath, "--n", "1")...)
		err := run(context.Background(), o, b, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", tc.name, err, tc.want)
		}
		if _, err := os.Stat(outPath); err == nil {
			t.Errorf("%s: wrote %s anyway", tc.name, outPath)
		}
	}
}

// corrupt writes a copy of the checkpoint with one byte flipped in the middle.
func corrupt(t *testing.T, path string) string {
	raw, _ := os.ReadFile(path)
	raw[len(raw)/2] ^= 0x55
	bad := filepath.Join(t.TempDir(), "bad.ckpt")
	if err := os.WriteFile(bad, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return bad
}

// otherPreset rewrites the checkpoint's metadata to claim the cpu preset: loading its weights
// into that network must fail with a clear message rather than a crash.
func otherPreset(t *testing.T, path string) string {
	store := model.NewStore()
	var meta experiment.Meta
	if err := diffusion.LoadCheckpoint(path, store, &meta); err != nil {
		t.Fatal(err)
	}
	meta.Preset, meta.UNet = "cpu", layers.CPU()
	other := filepath.Join(t.TempDir(), "other.ckpt")
	if err := diffusion.SaveCheckpoint(other, store, meta); err != nil {
		t.Fatal(err)
	}
	return other
}

func TestSampleDPMSolver(t *testing.T) {
	dir := t.TempDir()
	writeUntrainedCheckpoint(t, dir, 20)
	b, _ := backend.New()
	out := func(name string) string { return filepath.Join(dir, name) }
	var log bytes.Buffer
	for _, smp := range []string{"ddim", "dpm++"} {
		o := parse(t, "--checkpoint", dir, "--sampler", smp, "--n", "2", "--steps", "4", "--seed", "5",
			"--out", out(smp+".png"), "--gif", out(smp+".gif"))
		if err := run(context.Background(), o, b, &log, &log); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(log.String(), "DPM-Solver++") {
		t.Errorf("log does not name the sampler:\n%s", log.String())
	}
	ddim, _ := os.ReadFile(out("ddim.png"))
	dpm, _ := os.ReadFile(out("dpm++.png"))
	if bytes.Equal(ddim, dpm) { // Same first and last steps, but the two middle ones are second order.
		t.Error("dpm++ drew the same images as ddim")
	}
	f, err := os.Open(out("dpm++.gif"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if g, err := gif.DecodeAll(f); err != nil || len(g.Image) != 5 {
		t.Errorf("dpm++ GIF: %v, want 5 frames (the noise and 4 steps)", err)
	}
}
