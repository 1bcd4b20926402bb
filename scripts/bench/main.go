// Command bench measures the throughput of one training step and one sampler step of the model presets
// on the current backend, and the arithmetic rate they achieve from a FLOP count of the U-Net (ForwardMACs).
//
//	GOEXPERIMENT=simd go run ./scripts/bench --presets tiny,cpu --batches 1,64 --steps 3
//
// Each configuration runs one untimed step (which compiles) and then --steps timed steps, for training
// (diffusion.Trainer.Step on random images in [-1, 1]) and for sampling (a Generator with one DDIM step).
// Training FLOPs are counted as 3 x forward (forward + backward), sampling as 1 x forward.
//
// Memory: "peak heap" is the maximum of the Go runtime's HeapInuse sampled every 10 ms during the
// configuration's runs; "VmHWM" is the process's peak resident set (/proc/self/status) read after the
// configuration, cumulative over the whole process (so it never decreases from row to row).
//
// PyTorch side by side: with --pytorch PYTHON (e.g. --pytorch /usr/bin/python3, Debian's python3-torch),
// after the Go measurements it runs scripts/bench/pytorch_unet.py, a PyTorch mirror of the same U-Net
// (its parameter count is checked against the Go one), with the same presets, batches and steps on
// GOMAXPROCS threads, and prints a second table comparing the Go and PyTorch img/s. Run it from the
// repository root:
//
//	GOEXPERIMENT=simd go run ./scripts/bench --presets cpu --batches 64 --pytorch /usr/bin/python3
package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"runtime"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/diffusion"
	"github.com/godiffusion/godiffusion/experiment"
	"github.com/godiffusion/godiffusion/layers"
	"github.com/godiffusion/godiffusion/scripts/internal/cli"
)

type options struct {
	presetsFlag, batchesFlag string
	presets                  []string
	batches, parallels       []int
	steps                    int
	parallelFlag             string
	pytorch                  string // Python interpreter for the PyTorch comparison; "" = none.
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := cli.NewFlagSet("bench", "Measures training and sampler-step throughput (img/s, GFLOP/s) and peak memory of model presets.", stderr)
	fs.StringVar(&o.presetsFlag, "presets", "cpu", "comma-separated presets: "+strings.Join(experiment.PresetNames(), ", "))
	fs.StringVar(&o.batchesFlag, "batches", "1,64", "comma-separated batch sizes")
	fs.StringVar(&o.parallelFlag, "parallel", "0", "comma-separated numbers of concurrent shards per batch for training and sampling "+
		"(diffusion.TrainConfig.Parallel, SampleOptions.Parallel); 0: the backend's default, e.g. --parallel 1,0 for before/after")
	fs.IntVar(&o.steps, "steps", 3, "timed steps per measurement, after one untimed warm-up (compiling) step")
	fs.StringVar(&o.pytorch, "pytorch", "", "Python interpreter with PyTorch (e.g. /usr/bin/python3 with Debian's python3-torch): "+
		"also run "+pytorchScript+" (run from the repository root) and print a Go vs PyTorch table; empty: off")
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	var c cli.Checks
	for _, p := range splitList(o.presetsFlag) {
		_, err := experiment.Preset(p)
		c.Check(err == nil, "--presets=%q: %v", o.presetsFlag, err)
		o.presets = append(o.presets, p)
	}
	c.Check(len(o.presets) > 0, "--presets=%q: give at least one preset", o.presetsFlag)
	o.batches = intList(&c, "batches", o.batchesFlag, 1, 4096, "batch size")
	o.parallels = intList(&c, "parallel", o.parallelFlag, 0, 256, "shard count")
	c.Check(o.steps >= 1 && o.steps <= 10000, "--steps=%d: must lie in [1, 10000]", o.steps)
	return o, c.Err()
}

// intList parses the comma-separated integers of flag --name, recording in c the entries that are
// not integers in [lo, hi] and an empty list.
func intList(c *cli.Checks, name, value string, lo, hi int, what string) []int {
	var out []int
	for _, s := range splitList(value) {
		v, err := strconv.Atoi(s)
		c.Check(err == nil && v >= lo && v <= hi, "--%s=%q: %q is not a %s in [%d, %d]", name, value, s, what, lo, hi)
		out = append(out, v)
	}
	c.Check(len(out) > 0, "--%s=%q: give at least one %s", name, value, what)
	return out
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func main() { cli.Main("bench", parseFlags, run) }

// result is one row of the table.
type result struct {
	preset                    string
	batch, parallel           int
	trainIPS, sampleIPS       float64 // images per second.
	trainGFLOPS, sampleGFLOPS float64
	peakHeap                  uint64 // bytes.
	vmHWM                     int64  // bytes, -1 if unknown.
}

func run(ctx context.Context, o *options, b compute.Backend, stdout, stderr io.Writer) error {
	s, err := diffusion.ScheduleByName(diffusion.ScheduleLinear, diffusion.DefaultT)
	if err != nil {
		return err
	}
	if o.pytorch != "" { // Fail before the (long) Go measurements.
		if err := checkPyTorch(ctx, o.pytorch); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "bench: backend %s, GOMAXPROCS %d, %d timed steps after 1 warm-up\n", b.Name(), runtime.GOMAXPROCS(0), o.steps)
	for _, p := range o.presets {
		cfg, _ := experiment.Preset(p)
		fmt.Fprintf(stdout, "bench: %s: %.3f G forward MACs/image (%.3f GFLOP forward, %.3f GFLOP training)\n",
			p, float64(ForwardMACs(cfg))/1e9, 2*float64(ForwardMACs(cfg))/1e9, 6*float64(ForwardMACs(cfg))/1e9)
	}
	var rows []result
	for _, p := range o.presets {
		cfg, _ := experiment.Preset(p)
		for _, batch := range o.batches {
			for _, parallel := range o.parallels {
				if parallel == 0 {
					parallel = diffusion.Parallelism(b)
				}
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("%w: %w", cli.ErrInterrupted, err)
				}
				fmt.Fprintf(stderr, "bench: %s batch %d parallel %d...\n", p, batch, parallel)
				r, err := measure(b, s, p, cfg, batch, parallel, o.steps)
				if err != nil {
					return fmt.Errorf("%s batch %d: %w", p, batch, err)
				}
				rows = append(rows, r)
			}
		}
	}
	writeTable(stdout, b.Name(), rows)
	if o.pytorch == "" {
		return nil
	}
	fmt.Fprintf(stderr, "bench: PyTorch (%s %s)...\n", o.pytorch, pytorchScript)
	py, err := runPyTorch(ctx, o, runtime.GOMAXPROCS(0), stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	writeComparison(stdout, b.Name(), rows, py)
	return nil
}

// pytorchScript is the PyTorch mirror of the U-Net, relative to the repository root.
const pytorchScript = "scripts/bench/pytorch_unet.py"

// pytorchFix is appended to the errors of a PyTorch run that could not start or import torch.
const pytorchFix = "install Debian's PyTorch and OpenBLAS with `apt-get install python3-torch libopenblas0-pthread` and pass --pytorch /usr/bin/python3"

// checkPyTorch checks that pytorchScript exists and that python imports torch.
func checkPyTorch(ctx context.Context, python string) error {
	if _, err := os.Stat(pytorchScript); err != nil {
		return fmt.Errorf("--pytorch: %w: run the bench from the repository root (go run ./scripts/bench)", err)
	}
	out, err := exec.CommandContext(ctx, python, "-c", "import torch").CombinedOutput()
	if err != nil {
		if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); lines[len(lines)-1] != "" {
			// The exception, e.g. "ModuleNotFoundError: No module named 'torch'".
			err = fmt.Errorf("%w: %s", err, lines[len(lines)-1])
		}
		return fmt.Errorf("--pytorch=%s cannot import torch (%v): %s", python, err, pytorchFix)
	}
	return nil
}

// runPyTorch runs pytorchScript with o's presets, batches and steps on threads threads, passing its
// stderr through, and returns its results.
func runPyTorch(ctx context.Context, o *options, threads int, stderr io.Writer) ([]pytorchResult, error) {
	batches := make([]string, len(o.batches))
	for i, b := range o.batches {
		batches[i] = strconv.Itoa(b)
	}
	cmd := exec.CommandContext(ctx, o.pytorch, pytorchScript, "--presets", strings.Join(o.presets, ","),
		"--batches", strings.Join(batches, ","), "--steps", strconv.Itoa(o.steps), "--threads", strconv.Itoa(threads))
	cmd.Stderr = stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %w", cli.ErrInterrupted, ctx.Err())
		}
		return nil, fmt.Errorf("PyTorch benchmark (%s): %w (see its error above; for a missing torch, %s)",
			strings.Join(cmd.Args, " "), err, pytorchFix)
	}
	py, err := parsePyTorchLines(string(out))
	if err != nil {
		return nil, fmt.Errorf("PyTorch benchmark output: %w", err)
	}
	return py, nil
}

// pytorchResult is one line printed by pytorchScript.
type pytorchResult struct {
	preset              string
	batch, threads      int
	params              int64
	trainIPS, sampleIPS float64 // images per second.
	torch               string  // torch.__version__.
}

// parsePyTorchLines parses the lines of pytorchScript's output that start with "pytorch ", made of
// space-separated key=value fields:
//
//	pytorch preset=cpu batch=64 train_img_s=45.1 sample_img_s=250.3 params=3123097 threads=2 torch=1.13.1
//
// preset, batch, train_img_s and sample_img_s are required; unknown keys and other lines are ignored.
func parsePyTorchLines(out string) ([]pytorchResult, error) {
	var results []pytorchResult
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "pytorch" {
			continue
		}
		r := pytorchResult{batch: -1, trainIPS: -1, sampleIPS: -1}
		for _, f := range fields[1:] {
			key, value, ok := strings.Cut(f, "=")
			if !ok {
				return nil, fmt.Errorf("line %q: field %q is not key=value", line, f)
			}
			var err error
			switch key {
			case "preset":
				r.preset = value
			case "torch":
				r.torch = value
			case "batch":
				r.batch, err = strconv.Atoi(value)
			case "threads":
				r.threads, err = strconv.Atoi(value)
			case "params":
				r.params, err = strconv.ParseInt(value, 10, 64)
			case "train_img_s":
				r.trainIPS, err = strconv.ParseFloat(value, 64)
			case "sample_img_s":
				r.sampleIPS, err = strconv.ParseFloat(value, 64)
			}
			if err != nil {
				return nil, fmt.Errorf("line %q: %s: %w", line, key, err)
			}
		}
		if r.preset == "" || r.batch < 1 || r.trainIPS <= 0 || r.sampleIPS <= 0 {
			return nil, fmt.Errorf("line %q: needs preset, batch >= 1, train_img_s > 0 and sample_img_s > 0", line)
		}
		results = append(results, r)
	}
	if len(results) == 0 {
		return nil, fmt.Errorf("no \"pytorch ...\" result lines in %q", out)
	}
	return results, nil
}

// writeComparison prints the Go rows next to the PyTorch results of the same preset and batch
// ("n/a" where PyTorch has none), with the Go/PyTorch throughput ratios.
func writeComparison(w io.Writer, backendName string, rows []result, py []pytorchResult) {
	if len(py) > 0 {
		fmt.Fprintf(w, "Go (%s) vs PyTorch %s, %d threads:\n", backendName, py[0].torch, py[0].threads)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "preset\tbatch\tparallel\tGo train img/s\tPyTorch train img/s\tGo/PyTorch\tGo sample img/s\tPyTorch sample img/s\tGo/PyTorch\t")
	for _, r := range rows {
		pyTrain, pySample, trainRatio, sampleRatio := "n/a", "n/a", "n/a", "n/a"
		for _, p := range py {
			if p.preset == r.preset && p.batch == r.batch {
				pyTrain, pySample = fmt.Sprintf("%.1f", p.trainIPS), fmt.Sprintf("%.1f", p.sampleIPS)
				trainRatio, sampleRatio = fmt.Sprintf("%.2f", r.trainIPS/p.trainIPS), fmt.Sprintf("%.2f", r.sampleIPS/p.sampleIPS)
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%s\t%s\t%.1f\t%s\t%s\t\n", r.preset, r.batch, r.parallel, r.trainIPS, pyTrain, trainRatio,
			r.sampleIPS, pySample, sampleRatio)
	}
	tw.Flush()
}

// measure times training and sampler steps of one configuration while sampling the heap.
func measure(b compute.Backend, s *diffusion.Schedule, preset string, cfg layers.UNetConfig, batch, parallel, steps int) (r result, err error) {
	runtime.GC()
	stop := sampleHeap(&r.peakHeap)
	defer func() {
		stop()
		r.vmHWM = vmHWM()
	}()
	r.preset, r.batch, r.parallel = preset, batch, parallel
	fwdFLOPs := 2 * float64(ForwardMACs(cfg))

	tr, err := diffusion.NewTrainer(b, model.NewStore(), s, experiment.Denoiser(cfg), diffusion.TrainConfig{Seed: 1, Parallel: parallel})
	if err != nil {
		return r, err
	}
	x := randomImages(batch, cfg.ImageSize)
	if _, err := tr.Step(x); err != nil { // Compiles.
		return r, err
	}
	start := time.Now()
	for range steps {
		if _, err := tr.Step(x); err != nil {
			return r, err
		}
	}
	r.trainIPS = float64(batch*steps) / time.Since(start).Seconds()
	r.trainGFLOPS = r.trainIPS * 3 * fwdFLOPs / 1e9

	gen := diffusion.NewGenerator(b, model.NewStore(), s, experiment.Denoiser(cfg), cfg.ImageSize, cfg.ImageSize, imageChannels)
	sample := func() error { // One DDIM step: one denoiser call per image.
		_, err := gen.Sample(diffusion.DDIM{Steps: 1}, diffusion.SampleOptions{N: batch, BatchSize: batch, Seed: 1, Parallel: parallel})
		return err
	}
	if err := sample(); err != nil { // Compiles and initialises.
		return r, err
	}
	start = time.Now()
	for range steps {
		if err := sample(); err != nil {
			return r, err
		}
	}
	r.sampleIPS = float64(batch*steps) / time.Since(start).Seconds()
	r.sampleGFLOPS = r.sampleIPS * fwdFLOPs / 1e9
	return r, nil
}

// randomImages returns n single-channel size x size images uniform in [-1, 1].
func randomImages(n, size int) *tensors.Tensor {
	rng := rand.New(rand.NewPCG(1, 2))
	v := make([]float32, n*size*size*imageChannels)
	for i := range v {
		v[i] = float32(rng.Float64()*2 - 1)
	}
	return tensors.FromFlatDataAndDimensions(v, n, size, size, imageChannels)
}

// sampleHeap records the maximum runtime HeapInuse into *peak every 10 ms until the returned function
// is called (which takes a last sample).
func sampleHeap(peak *uint64) (stop func()) {
	var mu sync.Mutex
	read := func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		mu.Lock()
		*peak = max(*peak, m.HeapInuse)
		mu.Unlock()
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				read()
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		read()
	}
}

// vmHWM returns the process's peak resident set size from /proc/self/status, or -1 if unavailable.
func vmHWM() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest) // "123456 kB"
			if len(f) >= 1 {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb * 1024
				}
			}
		}
	}
	return -1
}

func writeTable(w io.Writer, backendName string, rows []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "preset\tbackend\tbatch\tparallel\ttrain img/s\tsample img/s\ttrain GFLOP/s\tsample GFLOP/s\tpeak heap MiB\tVmHWM MiB\t")
	for _, r := range rows {
		hwm := "n/a"
		if r.vmHWM >= 0 {
			hwm = fmt.Sprintf("%.0f", float64(r.vmHWM)/(1<<20))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f\t%.1f\t%.2f\t%.2f\t%.0f\t%s\t\n", r.preset, backendName, r.batch, r.parallel,
			r.trainIPS, r.sampleIPS, r.trainGFLOPS, r.sampleGFLOPS, float64(r.peakHeap)/(1<<20), hwm)
	}
	tw.Flush()
	fmt.Fprintln(w, "peak heap: max runtime.MemStats.HeapInuse sampled every 10 ms during the row's runs; "+
		"VmHWM: process peak RSS from /proc/self/status after the row (cumulative over the process).")
}
