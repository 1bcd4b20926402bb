// Command sample draws images from a trained checkpoint with DDPM or DDIM and writes a PNG grid
// and, on request, an animated GIF of the denoising chain. The same seed gives the same images.
//
//	go run ./scripts/sample --checkpoint runs/train --sampler ddim --steps 10 --n 64 --out samples.png
//	go run ./scripts/sample --sampler ddpm --gif chain.gif
package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gomlx/compute"

	"github.com/godiffusion/godiffusion/diffusion"
	"github.com/godiffusion/godiffusion/experiment"
	"github.com/godiffusion/godiffusion/kernel"
	"github.com/godiffusion/godiffusion/scripts/internal/cli"
)

type options struct {
	cli.SamplerFlags
	checkpoint, out, gif            string
	n, batch, gifImages, chainEvery int
	seed                            int64
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := cli.NewFlagSet("sample", "Draws images from a trained checkpoint.", stderr)
	fs.StringVar(&o.checkpoint, "checkpoint", "runs/train", "checkpoint file, or run folder (its latest checkpoint)")
	o.SamplerFlags.Register(fs)
	fs.IntVar(&o.n, "n", 64, "number of images")
	fs.IntVar(&o.batch, "batch", 64, "images per denoiser call")
	fs.Int64Var(&o.seed, "seed", 0, "seed of the starting noise and of every step's noise")
	fs.StringVar(&o.out, "out", "samples.png", "PNG grid to write")
	fs.StringVar(&o.gif, "gif", "", "also write the denoising chain as an animated GIF to this path")
	fs.IntVar(&o.gifImages, "gif-images", 16, "images shown in each GIF frame")
	fs.IntVar(&o.chainEvery, "chain-every", 0, "record a GIF frame every N steps (0: about 25 frames)")
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	var c cli.Checks
	o.SamplerFlags.Validate(&c)
	c.Check(o.n >= 1 && o.n <= 100000, "--n=%d: must lie in [1, 100000]", o.n)
	c.Check(o.batch >= 1, "--batch=%d: must be >= 1", o.batch)
	c.Check(o.gifImages >= 1, "--gif-images=%d: must be >= 1", o.gifImages)
	c.Check(o.chainEvery >= 0, "--chain-every=%d: must be >= 0", o.chainEvery)
	c.Check(strings.HasSuffix(strings.ToLower(o.out), ".png"), "--out=%q: must name a .png file", o.out)
	c.Check(o.gif == "" || strings.HasSuffix(strings.ToLower(o.gif), ".gif"), "--gif=%q: must name a .gif file", o.gif)
	return o, c.Err()
}

func main() { cli.Main("sample", parseFlags, run) }

func run(ctx context.Context, o *options, b compute.Backend, stdout, stderr io.Writer) error {
	m, err := o.SamplerFlags.LoadModel(o.checkpoint)
	if err != nil {
		return err
	}
	smp, err := o.SamplerFlags.Build(m.Meta.T)
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
	fmt.Fprintf(stdout, "sample: %s, model %s, %d images, seed %d, backend %s\n",
		smp, m.Meta.Summary(), o.n, o.seed, b.Name())
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
