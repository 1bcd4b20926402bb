// Command sample draws images from a trained checkpoint with DDPM or DDIM and writes a PNG grid
// and, on request, an animated GIF of the denoising chain. The same seed gives the same images.
//
//	go run ./scripts/sample --checkpoint runs/train --sampler ddim --steps 10 --n 64 --out samples.png
//	go run ./scripts/sample --sampler ddpm --gif chain.gif
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gomlx/compute"

	"github.com/godiffusion/godiffusion/backend"
	"github.com/godiffusion/godiffusion/diffusion"
	"github.com/godiffusion/godiffusion/experiment"
	"github.com/godiffusion/godiffusion/kernel"
)

type options struct {
	checkpoint, sampler, variance, out, gif string
	steps, n, batch, gifImages, chainEvery  int
	eta                                     float64
	seed                                    int64
	clip                                    bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("sample", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.checkpoint, "checkpoint", "runs/train", "checkpoint file, or run folder (its latest checkpoint)")
	fs.StringVar(&o.sampler, "sampler", "ddim", "sampler: ddim or ddpm")
	fs.IntVar(&o.steps, "steps", diffusion.DefaultDDIMSteps, "DDIM steps (ddpm always takes all T steps)")
	fs.Float64Var(&o.eta, "eta", 0, "DDIM eta in [0, 1]: 0 deterministic, 1 DDPM-like noise")
	fs.StringVar(&o.variance, "variance", diffusion.VarianceBeta, "DDPM step variance: beta or posterior")
	fs.BoolVar(&o.clip, "clip", false, "clip the x0 estimate to [-1, 1] at every step")
	fs.IntVar(&o.n, "n", 64, "number of images")
	fs.IntVar(&o.batch, "batch", 64, "images per denoiser call")
	fs.Int64Var(&o.seed, "seed", 0, "seed of the starting noise and of every step's noise")
	fs.StringVar(&o.out, "out", "samples.png", "PNG grid to write")
	fs.StringVar(&o.gif, "gif", "", "also write the denoising chain as an animated GIF to this path")
	fs.IntVar(&o.gifImages, "gif-images", 16, "images shown in each GIF frame")
	fs.IntVar(&o.chainEvery, "chain-every", 0, "record a GIF frame every N steps (0: about 25 frames)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./scripts/sample [flags]\n\nDraws images from a trained checkpoint.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q (all options are flags, see --help)", fs.Args())
	}
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(o.sampler == "ddim" || o.sampler == "ddpm", "--sampler=%q: use ddim or ddpm", o.sampler)
	check(o.steps >= 1, "--steps=%d: must be >= 1", o.steps)
	check(o.eta >= 0 && o.eta <= 1 && !math.IsNaN(o.eta), "--eta=%g: must lie in [0, 1]", o.eta)
	check(o.variance == diffusion.VarianceBeta || o.variance == diffusion.VariancePosterior,
		"--variance=%q: use %s or %s", o.variance, diffusion.VarianceBeta, diffusion.VariancePosterior)
	check(o.n >= 1 && o.n <= 100000, "--n=%d: must lie in [1, 100000]", o.n)
	check(o.batch >= 1, "--batch=%d: must be >= 1", o.batch)
	check(o.gifImages >= 1, "--gif-images=%d: must be >= 1", o.gifImages)
	check(o.chainEvery >= 0, "--chain-every=%d: must be >= 0", o.chainEvery)
	check(strings.HasSuffix(strings.ToLower(o.out), ".png"), "--out=%q: must name a .png file", o.out)
	check(o.gif == "" || strings.HasSuffix(strings.ToLower(o.gif), ".gif"), "--gif=%q: must name a .gif file", o.gif)
	return o, errors.Join(errs...)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sample: %v\n", err)
		os.Exit(2)
	}
	b, err := backend.New()
	if err == nil {
		err = run(ctx, o, b, os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sample: %v\n", err)
		os.Exit(1)
	}
}

// buildSampler builds the sampler the options ask for, for a schedule of T steps.
func (o *options) buildSampler(T int) (diffusion.Sampler, error) {
	if o.sampler == "ddpm" {
		return diffusion.DDPM{Variance: o.variance, Clip: o.clip}, nil
	}
	if o.steps > T {
		return nil, fmt.Errorf("--steps=%d: more DDIM steps than the model's T=%d", o.steps, T)
	}
	return diffusion.DDIM{Steps: o.steps, Eta: o.eta, Clip: o.clip}, nil
}

func run(ctx context.Context, o *options, b compute.Backend, stdout, stderr io.Writer) error {
	m, err := experiment.LoadModel(o.checkpoint)
	if err != nil {
		return err
	}
	smp, err := o.buildSampler(m.Meta.T)
	if err != nil {
		return err
	}
	plan, err := smp.Plan(m.Schedule)
	if err != nil {
		return err
	}
	every := 0
	if o.gif != "" {
		every = o.chainEvery
		if every == 0 {
			every = max(1, len(plan)/25)
		}
	}
	fmt.Fprintf(stdout, "sample: %s, model %s at step %d, %d images, seed %d, backend %s\n",
		smp, m.Meta.Preset, m.Meta.Step, o.n, o.seed, b.Name())
	progress := kernel.NewProgress(0, "sample").WithOutput(stderr, kernel.ProgressAuto).WithItems(min(o.batch, o.n), "img")
	start := time.Now()
	res, err := m.Generator(b).Sample(smp, diffusion.SampleOptions{N: o.n, BatchSize: o.batch, Seed: o.seed,
		ChainEvery: every, Context: ctx, OnStep: func(done, total int) { progress.Update(done) }})
	progress.Done()
	if err != nil {
		return m.ExplainLoadError(err)
	}
	paths, err := experiment.WriteSamples(res, o.out, o.gif, o.gifImages)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sample: %d images in %.1fs -> %s\n", o.n, time.Since(start).Seconds(), strings.Join(paths, ", "))
	return nil
}
