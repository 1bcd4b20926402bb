package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"image"
	"image/gif"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/backend"
	"github.com/godiffusion/godiffusion/diffusion"
	"github.com/godiffusion/godiffusion/diffusion/mnist"
	"github.com/godiffusion/godiffusion/experiment"
	"github.com/godiffusion/godiffusion/kernel"
	"github.com/godiffusion/godiffusion/layers"
)

// writeUntrainedCheckpoint saves a freshly initialised tiny model as scripts/train would.
func writeUntrainedCheckpoint(t *testing.T, dir string, T int) string {
	t.Helper()
	return writeCheckpoint(t, dir, T, 0)
}

// writeCheckpoint saves a freshly initialised tiny model, class-conditional if classes > 0.
func writeCheckpoint(t *testing.T, dir string, T, classes int) string {
	t.Helper()
	b, err := backend.New()
	if err != nil {
		t.Fatal(err)
	}
	meta := experiment.Meta{Preset: "tiny", UNet: layers.Tiny(), Schedule: diffusion.ScheduleLinear, T: T, Seed: 1, BatchSize: 2}
	meta.UNet.Classes = classes
	s, _ := meta.BuildSchedule()
	store := model.NewStore()
	store.SetParam(model.ParamInitialSeed, int64(1))
	gen := diffusion.NewGenerator(b, store, s, experiment.Denoiser(meta.UNet), 32, 32, 1)
	gen.Classes = classes
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
	for _, name := range []string{"a", "b"} {
		o := parse(t, "--checkpoint", dir, "--n", "4", "--sample-steps", "3", "--eta", "1", "--seed", "5", "--out", out(name))
		if err := run(context.Background(), o, b, &log, &log); err != nil {
			t.Fatal(err)
		}
	}
	o := parse(t, "--checkpoint", dir, "--n", "4", "--steps", "3", "--eta", "1", "--seed", "6", "--out", out("c"), // --steps: the old spelling
		"--gif", "--gif-images", "2")
	if err := run(context.Background(), o, b, &log, &log); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(out("a/grid.png"))
	bb, _ := os.ReadFile(out("b/grid.png"))
	c, _ := os.ReadFile(out("c/grid.png"))
	if !bytes.Equal(a, bb) {
		t.Error("same seed wrote different images")
	}
	if bytes.Equal(a, c) {
		t.Error("different seeds wrote the same images")
	}
	if _, err := os.Stat(out("a/chain.gif")); err == nil {
		t.Error("wrote chain.gif without --gif")
	}
	if n := gifFrames(t, out("c/chain.gif")); n != 4 { // Starting noise and 3 DDIM steps.
		t.Errorf("GIF has %d frames, want 4", n)
	}
}

func TestSampleBadInput(t *testing.T) {
	dir := t.TempDir()
	ckpt := writeUntrainedCheckpoint(t, dir, 20)
	b, _ := backend.New()
	for _, args := range [][]string{
		{"--sampler", "euler"}, {"--sampler", "dpm++", "--eta", "0.5"}, {"--sample-steps", "0"}, {"--steps", "-1"}, {"--eta", "1.5"},
		{"--eta", "-0.1"}, {"--spacing", "leading"}, {"--n", "0"}, {"--n", "100001"}, {"--out", "x.png"}, {"--out", "x.GIF"}, {"--out", ""},
		{"--gif", "x.gif"}, {"--gif=x.gif"}, {"--variance", "huge"}, {"stray"},
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
		{"too many DDIM steps", []string{"--checkpoint", dir, "--sample-steps", "21"}, "more steps than"},
		{"missing checkpoint", []string{"--checkpoint", filepath.Join(dir, "nope")}, "train one first"},
		{"corrupt checkpoint", []string{"--checkpoint", corrupt(t, ckpt)}, "corrupt"},
		{"other preset", []string{"--checkpoint", otherPreset(t, ckpt)}, "another model configuration"},
	}
	for _, tc := range cases {
		outPath := filepath.Join(t.TempDir(), "out")
		o := parse(t, append(tc.args, "--out", outPath, "--n", "1")...)
		err := run(context.Background(), o, b, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", tc.name, err, tc.want)
		}
		if _, err := os.Stat(outPath); err == nil {
			t.Errorf("%s: wrote %s anyway", tc.name, outPath)
		}
	}

	// --out naming a file, or a folder whose images/ holds PNGs this run would not replace, fails
	// before sampling and leaves the folder as it was.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(t.TempDir(), "stale")
	if err := os.MkdirAll(filepath.Join(stale, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"00000.png", "00002.png", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(stale, "images", name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ out, want string }{{file, "is a file"}, {stale, "holds 1 PNGs"}} {
		o := parse(t, "--checkpoint", dir, "--n", "2", "--out", tc.out)
		if err := run(context.Background(), o, b, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--out %s: error %v, want it to mention %q", tc.out, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(stale, "grid.png")); err == nil {
		t.Error("wrote a grid into the folder it refused")
	}
	// Without images/ the stale PNGs do not matter.
	o := parse(t, "--checkpoint", dir, "--n", "2", "--sample-steps", "2", "--out", stale, "--images=false")
	if err := run(context.Background(), o, b, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Errorf("--images=false: %v", err)
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
		o := parse(t, "--checkpoint", dir, "--sampler", smp, "--n", "2", "--sample-steps", "4", "--seed", "5",
			"--out", out(smp), "--gif")
		if err := run(context.Background(), o, b, &log, &log); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(log.String(), "DPM-Solver++") {
		t.Errorf("log does not name the sampler:\n%s", log.String())
	}
	ddim, _ := os.ReadFile(out("ddim/grid.png"))
	dpm, _ := os.ReadFile(out("dpm++/grid.png"))
	if bytes.Equal(ddim, dpm) { // Same first and last steps, but the two middle ones are second order.
		t.Error("dpm++ drew the same images as ddim")
	}
	f, err := os.Open(out("dpm++/chain.gif"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if g, err := gif.DecodeAll(f); err != nil || len(g.Image) != 5 {
		t.Errorf("dpm++ GIF: %v, want 5 frames (the noise and 4 steps)", err)
	}
}

// TestSampleFilesForOtherTools checks the folder of PNGs and the .npy array: one decodable PNG per
// image at the model's size, and an array whose header and pixels match them and the grid.
func TestSampleFilesForOtherTools(t *testing.T) {
	dir := t.TempDir()
	writeUntrainedCheckpoint(t, dir, 20)
	b, _ := backend.New()
	const n, size = 5, 32
	out := filepath.Join(dir, "out")
	o := parse(t, "--checkpoint", dir, "--n", strconv.Itoa(n), "--sample-steps", "2", "--batch", "2", "--seed", "3", "--out", out)
	var log bytes.Buffer
	if err := run(context.Background(), o, b, &log, &log); err != nil {
		t.Fatal(err)
	}

	entries, err := os.ReadDir(filepath.Join(out, "images"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"00000.png", "00001.png", "00002.png", "00003.png", "00004.png"}; !slices.Equal(names, want) {
		t.Fatalf("images/ holds %v, want %v", names, want)
	}
	pngs := make([]*image.Gray, n)
	for i, name := range names {
		img := decodePNG(t, filepath.Join(out, "images", name))
		if img.Bounds() != image.Rect(0, 0, size, size) {
			t.Fatalf("%s is %v, want %dx%d", name, img.Bounds(), size, size)
		}
		gray, ok := img.(*image.Gray)
		if !ok {
			t.Fatalf("%s decodes as %T, want 8-bit gray", name, img)
		}
		pngs[i] = gray
	}

	raw, err := os.ReadFile(filepath.Join(out, "images.npy"))
	if err != nil {
		t.Fatal(err)
	}
	descr, shape, fortran, data := readNPY(t, raw)
	if (descr != "<u1" && descr != "|u1") || fortran || !slices.Equal(shape, []int{n, size, size, 1}) {
		t.Fatalf("images.npy: descr %q, fortran_order %v, shape %v; want uint8, C order, [%d %d %d 1]", descr, fortran, shape, n, size, size)
	}
	if len(data) != n*size*size {
		t.Fatalf("images.npy holds %d bytes of data, want %d", len(data), n*size*size)
	}
	grid := decodePNG(t, filepath.Join(out, "grid.png")).(*image.Gray)
	const cols, pad, scale = 3, 2, experiment.GridScale // ceil(sqrt(5)) columns, as experiment.WriteSamples draws
	distinct := map[uint8]bool{}
	for i := range n {
		for y := range size {
			for x := range size {
				v := data[(i*size+y)*size+x]
				distinct[v] = true
				if p := pngs[i].GrayAt(x, y).Y; p != v {
					t.Fatalf("image %d pixel (%d, %d): npy %d, png %d", i, x, y, v, p)
				}
				gx, gy := pad+(i%cols)*(size*scale+pad)+x*scale, pad+(i/cols)*(size*scale+pad)+y*scale
				if g := grid.GrayAt(gx, gy).Y; g != v {
					t.Fatalf("image %d pixel (%d, %d): npy %d, grid %d", i, x, y, v, g)
				}
			}
		}
	}
	if len(distinct) < 10 {
		t.Errorf("the images hold only %d gray levels", len(distinct))
	}
	if !strings.Contains(log.String(), "images.npy") || !strings.Contains(log.String(), "5 PNGs") {
		t.Errorf("the log does not list the files:\n%s", log.String())
	}

	// --images=false --npy=false: the grid only.
	only := filepath.Join(dir, "only")
	o = parse(t, "--checkpoint", dir, "--n", "2", "--sample-steps", "2", "--out", only, "--images=false", "--npy=false")
	if err := run(context.Background(), o, b, &log, &log); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(only); len(entries) != 1 || entries[0].Name() != "grid.png" {
		t.Errorf("--images=false --npy=false wrote %v, want grid.png only", entries)
	}
}

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

// readNPY parses a NumPy .npy file of format version 1.0: magic, version, header length, the
// header dictionary, then the data.
func readNPY(t *testing.T, raw []byte) (descr string, shape []int, fortran bool, data []byte) {
	t.Helper()
	if len(raw) < 10 || string(raw[:6]) != "\x93NUMPY" || raw[6] != 1 || raw[7] != 0 {
		t.Fatalf("not a version 1.0 .npy file: % x", raw[:min(len(raw), 10)])
	}
	end := 10 + int(binary.LittleEndian.Uint16(raw[8:10]))
	if end > len(raw) || end%16 != 0 || raw[end-1] != '\n' {
		t.Fatalf("header ends at %d of %d bytes (want a multiple of 16, ending in a newline)", end, len(raw))
	}
	header := string(raw[10:end])
	m := regexp.MustCompile(`^\{'descr': '([^']+)', 'fortran_order': (True|False), 'shape': \(([0-9, ]*)\), \} *\n$`).FindStringSubmatch(header)
	if m == nil {
		t.Fatalf("header %q not understood", header)
	}
	for _, d := range strings.Split(m[3], ",") {
		if d = strings.TrimSpace(d); d != "" {
			k, err := strconv.Atoi(d)
			if err != nil {
				t.Fatal(err)
			}
			shape = append(shape, k)
		}
	}
	return m[1], shape, m[2] == "True", raw[end:]
}

// TestSampleDigits draws from a class-conditional checkpoint: --digit gives every image that label,
// the default draws the ten digits in turn, and an unconditional checkpoint refuses --digit.
func TestSampleDigits(t *testing.T) {
	dir := t.TempDir()
	writeCheckpoint(t, dir, 20, 10)
	plain := t.TempDir()
	writeUntrainedCheckpoint(t, plain, 20)
	sample := func(args ...string) ([]byte, error) {
		_, pixels, err := runSample(t, append([]string{"--n", "10", "--sample-steps", "3", "--images=false"}, args...)...)
		return pixels, err
	}
	seven, err := sample("--checkpoint", dir, "--digit", "7", "--guidance", "2")
	if err != nil {
		t.Fatal(err)
	}
	all, err := sample("--checkpoint", dir, "--guidance", "2")
	if err != nil {
		t.Fatal(err)
	}
	none, err := sample("--checkpoint", dir, "--digit", "none")
	if err != nil {
		t.Fatal(err)
	}
	per := len(seven) / 10
	// Image 7 of the default grid is asked for a 7 too, from the same noise: the same pixels.
	if !slices.Equal(seven[7*per:8*per], all[7*per:8*per]) {
		t.Error("image 7 differs between --digit 7 and the ten digits in turn")
	}
	if slices.Equal(seven[:per], all[:per]) {
		t.Error("image 0 asked for a 7 and for a 0 came out the same")
	}
	if slices.Equal(none[:per], all[:per]) {
		t.Error("--digit none drew the labelled image")
	}
	if _, err := sample("--checkpoint", plain, "--digit", "3"); err == nil || !strings.Contains(err.Error(), "train --classes") {
		t.Errorf("--digit on an unconditional checkpoint: error %v, want one naming train --classes", err)
	}
	for _, args := range [][]string{{"--digit", "10"}, {"--digit", "x"}, {"--guidance", "-1"}, {"--interpolate", "--n", "1"},
		{"--interpolate", "--eta", "1"}, {"--interpolate", "--sampler", "ddpm"}, {"--interpolate", "--digit", "all"},
		{"--inpaint", "middle"}, {"--inpaint", "lower", "--interpolate"}} {
		if _, err := parseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// TestSampleInterpolate: the ends of the strip are the first images of plain sampling with --seed
// and --seed+1 (the path starts and ends at their noise), and the GIF goes there and back.
func TestSampleInterpolate(t *testing.T) {
	dir := t.TempDir()
	writeUntrainedCheckpoint(t, dir, 20)
	images := func(args ...string) (string, []byte) {
		out, pixels, err := runSample(t, append([]string{"--checkpoint", dir, "--sample-steps", "4"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return out, pixels
	}
	out, strip := images("--interpolate", "--n", "5", "--seed", "3")
	_, first := images("--n", "1", "--seed", "3")
	_, last := images("--n", "1", "--seed", "4")
	per := len(first)
	if !bytes.Equal(strip[:per], first) || !bytes.Equal(strip[4*per:], last) {
		t.Error("the strip's ends are not the first images of seeds 3 and 4")
	}
	if n := gifFrames(t, filepath.Join(out, interpFile)); n != 8 { // 5 images there, 3 back.
		t.Errorf("%s has %d frames, want 8", interpFile, n)
	}
}

// gifFrames returns the number of frames of the GIF file at path.
func gifFrames(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := gif.DecodeAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return len(g.Image)
}

// TestSampleInpaint completes the lower half of test digits: the upper half of every output is the
// digit's own pixels, and inputs.png holds what the model was given.
func TestSampleInpaint(t *testing.T) {
	dir := t.TempDir()
	writeUntrainedCheckpoint(t, dir, 20)
	out, got, err := runSample(t, "--checkpoint", dir, "--sample-steps", "4", "--inpaint", "lower", "--n", "3", "--seed", "2")
	if err != nil {
		t.Fatal(err)
	}
	mdir, err := mnist.ResolveDir("")
	if err != nil {
		t.Fatal(err)
	}
	test, err := mnist.Load(mdir, mnist.Test)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := experiment.DigitImages(test, 3, 32, 2)
	if err != nil {
		t.Fatal(err)
	}
	wv := tensors.MustCopyFlatData[float32](want)
	for i := range 3 * 32 * 32 {
		if y := (i / 32) % 32; y < 16 && got[i] != kernel.ToGray(wv[i]) {
			t.Fatalf("pixel %d (row %d, known) = %d, want the digit's %d", i, y, got[i], kernel.ToGray(wv[i]))
		}
	}
	if _, err := os.Stat(filepath.Join(out, inputsFile)); err != nil {
		t.Error(err)
	}
}

// runSample runs the command with args into a fresh --out folder and returns the folder and the
// pixels of its images.npy.
func runSample(t *testing.T, args ...string) (out string, pixels []byte, err error) {
	t.Helper()
	b, err := backend.New()
	if err != nil {
		t.Fatal(err)
	}
	out = filepath.Join(t.TempDir(), "out")
	o := parse(t, append(args, "--out", out)...)
	if err := run(context.Background(), o, b, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		return out, nil, err
	}
	raw, err := os.ReadFile(filepath.Join(out, npyFile))
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, pixels = readNPY(t, raw)
	return out, pixels, nil
}
