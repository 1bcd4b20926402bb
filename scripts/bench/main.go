// Command bench measures the throughput of one training step and one sampler step of the model presets
// on every engine installed (ONNX Runtime, XLA, GoMLX's pure Go backend, ...), and the arithmetic rate
// they achieve from a FLOP count of the U-Net (ForwardMACs).
//
//	GOEXPERIMENT=simd go run ./scripts/bench                                   # cpu preset, batches 16 and 64, every engine
//	GOEXPERIMENT=simd go run ./scripts/bench --engines go --presets tiny,cpu --batches 1,64 --steps 3
//	GOEXPERIMENT=simd go run ./scripts/bench --pytorch /usr/bin/python3         # and the Go vs PyTorch table
//
// Engines: --engines takes $GOMLX_BACKEND values separated by semicolons (a value may hold commas,
// e.g. "onnx:cpu,intra_op_num_threads=1;go"). Without it the
// bench measures $GOMLX_BACKEND alone when that is set, else every engine of backend.Installed() (the
// engines present on this machine, in the order the project prefers them; the pure Go backend last);
// --engines= (given, empty) measures every installed engine even when $GOMLX_BACKEND is set.
// An engine name that is not a compiled-in backend (go, onnx, xla, ...) or a Go backend option that it
// does not know is a flag error; other engines (which load a library) are all created before the first
// measurement, so a configuration they reject fails at once with the list of installed engines.
//
// Each configuration (engine x preset x batch x parallel) runs one untimed step (which compiles) and
// then --steps timed steps, for training (diffusion.Trainer.Step on random images in [-1, 1]) and for
// sampling (a Generator with one DDIM step). --parallel 0 is the engine's default shard count
// (diffusion.Parallelism: GOMAXPROCS on the Go backend, 1 elsewhere); values that come to the same count
// on an engine are measured once. Training FLOPs are counted as 3 x forward (forward + backward),
// sampling as 1 x forward.
//
// The table has one row per configuration; "engine" is the $GOMLX_BACKEND value (the header lines give
// each engine's backend name and description). img/s is images per second: training images per
// second of whole Trainer.Step calls, and images per second of one sampler step (one denoiser call per
// image), so a sampler of S steps produces img/s / S images per second.
//
// Memory: "peak heap" is the maximum of the Go runtime's HeapInuse sampled every 10 ms during the
// configuration's runs (memory that ONNX Runtime or XLA allocate outside the Go heap is not in it);
// "VmHWM" is the process's peak resident set (/proc/self/status) read after the configuration,
// cumulative over the whole process and all engines (so it never decreases from row to row).
//
// PyTorch side by side: with --pytorch PYTHON (e.g. --pytorch /usr/bin/python3, Debian's python3-torch),
// after the Go measurements it runs scripts/bench/pytorch_unet.py once, a PyTorch mirror of the same U-Net
// (its parameter count is checked against the Go one), with the same presets, batches and steps on
// GOMAXPROCS threads, and prints a second table with one row per engine x preset x batch x parallel:
// the Go and PyTorch img/s and their ratios (Go/PyTorch above 1: the engine is faster), then one line per
// engine with its best training and sampling ratio. PyTorch runs without OPENBLAS_CORETYPE and
// OPENBLAS_L2_SIZE in its environment (some machines set them, holding OpenBLAS to AVX2 kernels) and,
// on a CPU with AVX-512, with ATEN_CPU_CAPABILITY=avx512 unless that is already set: AVX-512 kernels
// allowed, as the Go side uses them. Run it from the repository root:
//
//	GOEXPERIMENT=simd go run ./scripts/bench --presets cpu --batches 16,64 --pytorch /usr/bin/python3
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/backend"
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
	enginesFlag              string
	engines                  []string // $GOMLX_BACKEND values to measure, in order.
	enginesFromEnv           bool     // engines is $GOMLX_BACKEND (--engines not given): run measures the backend cli.Main made.
	pytorch                  string   // Python interpreter for the PyTorch comparison; "" = none.
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := cli.NewFlagSet("bench", "Measures training and sampler-step throughput (img/s, GFLOP/s) and peak memory of model presets on every engine installed.", stderr)
	fs.StringVar(&o.presetsFlag, "presets", "cpu", "comma-separated presets: "+strings.Join(experiment.PresetNames(), ", "))
	fs.StringVar(&o.batchesFlag, "batches", "16,64", "comma-separated batch sizes")
	fs.StringVar(&o.parallelFlag, "parallel", "0", "comma-separated numbers of concurrent shards per batch for training and sampling "+
		"(diffusion.TrainConfig.Parallel, SampleOptions.Parallel); 0: the engine's default, e.g. --parallel 1,0 for before/after")
	fs.IntVar(&o.steps, "steps", 3, "timed steps per measurement, after one untimed warm-up (compiling) step")
	fs.StringVar(&o.enginesFlag, "engines", "", "$GOMLX_BACKEND values of the engines to measure, separated by semicolons (e.g. 'onnx:cpu;go'); "+
		"empty: every installed engine ("+strings.Join(backend.Installed(), ", ")+" here), or $GOMLX_BACKEND alone when it is set and this flag is not given")
	fs.StringVar(&o.pytorch, "pytorch", "", "Python interpreter with PyTorch (e.g. /usr/bin/python3 with Debian's python3-torch): "+
		"also run "+pytorchScript+" (run from the repository root) and print a Go vs PyTorch table; empty: off")
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	var c cli.Checks
	for _, p := range splitList(o.presetsFlag, ",") {
		_, err := experiment.Preset(p)
		c.Check(err == nil, "--presets=%q: %v", o.presetsFlag, err)
		o.presets = append(o.presets, p)
	}
	c.Check(len(o.presets) > 0, "--presets=%q: give at least one preset", o.presetsFlag)
	o.batches = intList(&c, "batches", o.batchesFlag, 1, 4096, "batch size")
	o.parallels = intList(&c, "parallel", o.parallelFlag, 0, 256, "shard count")
	c.Check(o.steps >= 1 && o.steps <= 10000, "--steps=%d: must lie in [1, 10000]", o.steps)
	enginesGiven := false
	fs.Visit(func(f *flag.Flag) { enginesGiven = enginesGiven || f.Name == "engines" })
	o.engines, o.enginesFromEnv = chooseEngines(&c, o.enginesFlag, enginesGiven)
	return o, c.Err()
}

// installedFlag is the --engines value, quoted for a shell, of the engines installed here.
func installedFlag() string { return "'" + strings.Join(backend.Installed(), ";") + "'" }

// chooseEngines returns the engines to measure: those of --engines=value when the flag was given
// (every installed one when it is empty), else $GOMLX_BACKEND alone when set (fromEnv), else every
// installed one. It records in c the --engines entries that name no compiled-in backend, the Go
// backend configurations that the Go backend rejects (creating one is cheap) and repeated entries;
// the configurations of other engines are checked when run creates them (that loads their library).
func chooseEngines(c *cli.Checks, value string, given bool) (engines []string, fromEnv bool) {
	if !given {
		if env := os.Getenv(compute.ConfigEnvVar); env != "" {
			return []string{env}, true
		}
	}
	engines = splitList(value, ";") // An engine's configuration may hold commas.
	if len(engines) == 0 {
		return backend.Installed(), false
	}
	compiledIn := compute.List()
	slices.Sort(compiledIn)
	seen := map[string]bool{}
	for _, e := range engines {
		c.Check(!seen[e], "--engines=%q: %q is given twice", value, e)
		seen[e] = true
		name, _, _ := strings.Cut(e, ":")
		if !slices.Contains(compiledIn, name) {
			c.Check(false, "--engines=%q: unknown engine %q: give $GOMLX_BACKEND values of the compiled-in backends (%s), "+
				"e.g. the engines installed here: --engines %s", value, e, strings.Join(compiledIn, ", "), installedFlag())
			continue
		}
		if name == backend.Go {
			b, err := backend.NewWithConfig(e)
			if err == nil {
				b.Finalize()
			}
			c.Check(err == nil, "--engines=%q: engine %q: %v (engines installed here: --engines %s)", value, e, err, installedFlag())
		}
	}
	return engines, false
}

// intList parses the comma-separated integers of flag --name, recording in c the entries that are
// not integers in [lo, hi] and an empty list.
func intList(c *cli.Checks, name, value string, lo, hi int, what string) []int {
	var out []int
	for _, s := range splitList(value, ",") {
		v, err := strconv.Atoi(s)
		c.Check(err == nil && v >= lo && v <= hi, "--%s=%q: %q is not a %s in [%d, %d]", name, value, s, what, lo, hi)
		out = append(out, v)
	}
	c.Check(len(out) > 0, "--%s=%q: give at least one %s", name, value, what)
	return out
}

// splitList splits a list separated by sep, dropping blanks.
func splitList(s, sep string) []string {
	var out []string
	for _, f := range strings.Split(s, sep) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func main() { cli.Main("bench", parseFlags, run) }

// result is one row of the table.
type result struct {
	engine                    string // $GOMLX_BACKEND value.
	preset                    string
	batch, parallel           int
	trainIPS, sampleIPS       float64 // images per second.
	trainGFLOPS, sampleGFLOPS float64
	peakHeap                  uint64 // bytes.
	vmHWM                     int64  // bytes, -1 if unknown.
}

// engine is one backend to measure.
type engine struct {
	config string // $GOMLX_BACKEND value.
	b      compute.Backend
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
	engines, err := openEngines(o, b)
	if err != nil {
		return err
	}
	defer func() {
		for _, e := range engines {
			if !e.b.IsFinalized() {
				e.b.Finalize()
			}
		}
	}()
	fmt.Fprintf(stdout, "bench: GOMAXPROCS %d, %d timed steps after 1 warm-up\n", runtime.GOMAXPROCS(0), o.steps)
	for _, e := range engines {
		fmt.Fprintf(stdout, "bench: engine %s: backend %s (%s)\n", e.config, e.b.Name(), e.b.Description())
	}
	for _, p := range o.presets {
		cfg, _ := experiment.Preset(p)
		fmt.Fprintf(stdout, "bench: %s: %.3f G forward MACs/image (%.3f GFLOP forward, %.3f GFLOP training)\n",
			p, float64(ForwardMACs(cfg))/1e9, 2*float64(ForwardMACs(cfg))/1e9, 6*float64(ForwardMACs(cfg))/1e9)
	}
	var rows []result
	for _, e := range engines {
		for _, p := range o.presets {
			cfg, _ := experiment.Preset(p)
			for _, batch := range o.batches {
				for _, parallel := range engineParallels(o.parallels, diffusion.Parallelism(e.b)) {
					if err := ctx.Err(); err != nil {
						return fmt.Errorf("%w: %w", cli.ErrInterrupted, err)
					}
					fmt.Fprintf(stderr, "bench: %s %s batch %d parallel %d...\n", e.config, p, batch, parallel)
					r, err := measure(e.b, s, p, cfg, batch, parallel, o.steps)
					if err != nil {
						return fmt.Errorf("engine %s, %s batch %d parallel %d: %w", e.config, p, batch, parallel, err)
					}
					r.engine = e.config
					rows = append(rows, r)
				}
			}
		}
		e.b.Finalize() // Done with this engine: release what it holds before the next one runs.
	}
	writeTable(stdout, rows)
	if o.pytorch == "" {
		return nil
	}
	fmt.Fprintf(stderr, "bench: PyTorch (%s %s)...\n", o.pytorch, pytorchScript)
	env := pytorchEnv(os.Environ(), hasAVX512())
	py, err := runPyTorch(ctx, o, runtime.GOMAXPROCS(0), env, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	writeComparison(stdout, pytorchEnvNote(env), rows, py)
	return nil
}

// openEngines returns the backends of o.engines, all created before any measurement so that a
// configuration an engine rejects fails at once. b is the backend cli.Main made (backend.New): it is
// the engine when o.engines came from $GOMLX_BACKEND, and is finalized unused otherwise (an XLA GPU
// client holds most of the GPU's memory).
func openEngines(o *options, b compute.Backend) ([]engine, error) {
	if o.enginesFromEnv {
		return []engine{{o.engines[0], b}}, nil
	}
	b.Finalize()
	var engines []engine
	for _, cfg := range o.engines {
		eb, err := backend.NewWithConfig(cfg)
		if err != nil {
			for _, e := range engines {
				e.b.Finalize()
			}
			return nil, fmt.Errorf("engine %q: %w (choose the engines with --engines; those installed here: --engines %s)",
				cfg, err, installedFlag())
		}
		engines = append(engines, engine{cfg, eb})
	}
	return engines, nil
}

// engineParallels returns the --parallel values for an engine whose default shard count is def:
// 0 replaced by def, each count once, in the order given.
func engineParallels(parallels []int, def int) []int {
	var out []int
	for _, p := range parallels {
		if p == 0 {
			p = def
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
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
	cmd := exec.CommandContext(ctx, python, "-c", "import torch")
	cmd.Env = pytorchEnv(os.Environ(), hasAVX512())
	out, err := cmd.CombinedOutput()
	if err != nil {
		if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); lines[len(lines)-1] != "" {
			// The exception, e.g. "ModuleNotFoundError: No module named 'torch'".
			err = fmt.Errorf("%w: %s", err, lines[len(lines)-1])
		}
		return fmt.Errorf("--pytorch=%s cannot import torch (%v): %s", python, err, pytorchFix)
	}
	return nil
}

// runPyTorch runs pytorchScript with o's presets, batches and steps on threads threads in the
// environment env, passing its stderr through, and returns its results.
func runPyTorch(ctx context.Context, o *options, threads int, env []string, stderr io.Writer) ([]pytorchResult, error) {
	batches := make([]string, len(o.batches))
	for i, b := range o.batches {
		batches[i] = strconv.Itoa(b)
	}
	cmd := exec.CommandContext(ctx, o.pytorch, pytorchScript, "--presets", strings.Join(o.presets, ","),
		"--batches", strings.Join(batches, ","), "--steps", strconv.Itoa(o.steps), "--threads", strconv.Itoa(threads))
	cmd.Env = env
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

// pytorchDroppedEnv are the variables removed from PyTorch's environment: some machines set them
// (OPENBLAS_CORETYPE=Haswell and an L2 size), which holds OpenBLAS, and so Debian's PyTorch, to its
// AVX2 kernels on CPUs with AVX-512.
var pytorchDroppedEnv = []string{"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"}

// atenCapability is the variable that chooses ATen's CPU kernels (default, avx2, avx512).
const atenCapability = "ATEN_CPU_CAPABILITY"

// pytorchEnv returns the environment of the PyTorch subprocess, from environ (os.Environ()): without
// pytorchDroppedEnv, and with ATEN_CPU_CAPABILITY=avx512 added when the CPU has AVX-512 (avx512)
// and environ does not set ATEN_CPU_CAPABILITY already (the user's value is kept). Everything else
// is kept in order. The bench's own environment is left alone.
func pytorchEnv(environ []string, avx512 bool) []string {
	env := make([]string, 0, len(environ)+1)
	hasAten := false
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if slices.Contains(pytorchDroppedEnv, name) {
			continue
		}
		hasAten = hasAten || name == atenCapability
		env = append(env, kv)
	}
	if avx512 && !hasAten {
		env = append(env, atenCapability+"=avx512")
	}
	return env
}

// pytorchEnvNote describes for the comparison's header how env (from pytorchEnv) sets PyTorch's
// CPU kernels.
func pytorchEnvNote(env []string) string {
	note := "without " + strings.Join(pytorchDroppedEnv, " and ")
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, atenCapability+"="); ok {
			if v == "avx512" {
				return "AVX-512 kernels allowed: " + atenCapability + "=avx512, " + note
			}
			return atenCapability + "=" + v + ", " + note
		}
	}
	return "no AVX-512 on this CPU, " + note
}

// hasAVX512 reports whether the CPU has the AVX-512 subsets that ATen's AVX512 kernels need
// (F, BW, VL, DQ), from the flags in /proc/cpuinfo (false where that cannot be read).
func hasAVX512() bool {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		name, flags, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) != "flags" {
			continue
		}
		have := strings.Fields(flags)
		for _, f := range []string{"avx512f", "avx512bw", "avx512vl", "avx512dq"} {
			if !slices.Contains(have, f) {
				return false
			}
		}
		return true
	}
	return false
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

// writeComparison prints one row per Go row (engine x preset x batch x parallel) next to the PyTorch
// results of the same preset and batch ("n/a" where PyTorch has none), with the Go/PyTorch throughput
// ratios, then one line per engine with its best training and sampling ratios. envNote says how
// PyTorch's CPU kernels were chosen (pytorchEnvNote).
func writeComparison(w io.Writer, envNote string, rows []result, py []pytorchResult) {
	if len(py) > 0 {
		fmt.Fprintf(w, "Go engines vs PyTorch %s, %d threads (%s):\n", py[0].torch, py[0].threads, envNote)
	}
	type best struct {
		train, sample       float64 // ratios; 0: none.
		trainRow, sampleRow result
	}
	var engines []string
	bests := map[string]*best{}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "engine\tpreset\tbatch\tparallel\tGo train img/s\tPyTorch train img/s\tGo/PyTorch\tGo sample img/s\tPyTorch sample img/s\tGo/PyTorch\t")
	for _, r := range rows {
		bt := bests[r.engine]
		if bt == nil {
			bt = &best{}
			bests[r.engine] = bt
			engines = append(engines, r.engine)
		}
		pyTrain, pySample, trainRatio, sampleRatio := "n/a", "n/a", "n/a", "n/a"
		for _, p := range py {
			if p.preset == r.preset && p.batch == r.batch {
				tr, sr := r.trainIPS/p.trainIPS, r.sampleIPS/p.sampleIPS
				pyTrain, pySample = fmt.Sprintf("%.1f", p.trainIPS), fmt.Sprintf("%.1f", p.sampleIPS)
				trainRatio, sampleRatio = fmt.Sprintf("%.2f", tr), fmt.Sprintf("%.2f", sr)
				if tr > bt.train {
					bt.train, bt.trainRow = tr, r
				}
				if sr > bt.sample {
					bt.sample, bt.sampleRow = sr, r
				}
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f\t%s\t%s\t%.1f\t%s\t%s\t\n", r.engine, r.preset, r.batch, r.parallel, r.trainIPS, pyTrain, trainRatio,
			r.sampleIPS, pySample, sampleRatio)
	}
	tw.Flush()
	where := func(r result) string { return fmt.Sprintf("%s batch %d parallel %d", r.preset, r.batch, r.parallel) }
	for _, e := range engines {
		bt := bests[e]
		if bt.train == 0 {
			fmt.Fprintf(w, "best vs PyTorch, %s: n/a (no PyTorch result for its presets and batches)\n", e)
			continue
		}
		fmt.Fprintf(w, "best vs PyTorch, %s: train %.2fx (%s), sample %.2fx (%s)\n", e, bt.train, where(bt.trainRow), bt.sample, where(bt.sampleRow))
	}
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

// writeTable prints one row per configuration, the engine's $GOMLX_BACKEND value first.
func writeTable(w io.Writer, rows []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "engine\tpreset\tbatch\tparallel\ttrain img/s\tsample img/s\ttrain GFLOP/s\tsample GFLOP/s\tpeak heap MiB\tVmHWM MiB\t")
	for _, r := range rows {
		hwm := "n/a"
		if r.vmHWM >= 0 {
			hwm = fmt.Sprintf("%.0f", float64(r.vmHWM)/(1<<20))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f\t%.1f\t%.2f\t%.2f\t%.0f\t%s\t\n", r.engine, r.preset, r.batch, r.parallel,
			r.trainIPS, r.sampleIPS, r.trainGFLOPS, r.sampleGFLOPS, float64(r.peakHeap)/(1<<20), hwm)
	}
	tw.Flush()
	fmt.Fprintln(w, "peak heap: max runtime.MemStats.HeapInuse (Go heap only) sampled every 10 ms during the row's runs; "+
		"VmHWM: process peak RSS from /proc/self/status after the row (cumulative over the process and its engines).")
}
