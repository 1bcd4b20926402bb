// Command sample draws images from a trained checkpoint with DDIM, DPM-Solver++ or DDPM and writes
// them to the folder --out: a PNG grid, one PNG per image and a NumPy array (the inputs of FID tools
// and Python scripts), and on request an animated GIF of the denoising chain. The same seed gives the
// same images.
//
//	go run ./scripts/sample --checkpoint runs/train --sampler ddim --sample-steps 10 --n 64 --out samples
//	go run ./scripts/sample --sampler ddpm --gif --out ddpm
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gomlx/compute"

	"github.com/godiffusion/godiffusion/diffusion"
	"github.com/godiffusion/godiffusion/experiment"
	"github.com/godiffusion/godiffusion/kernel"
	"github.com/godiffusion/godiffusion/scripts/internal/cli"
)

// The files sample writes in --out.
const (
	gridFile   = "grid.png"
	imagesDir  = "images"
	npyFile    = "images.npy"
	chainFile  = "chain.gif"
	maxSamples = 100000
)

type options struct {
	cli.SamplerFlags
	checkpoint, out                 string
	n, batch, gifImages, chainEvery int
	seed                            int64
	gif, images, npy                bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := cli.NewFlagSet("sample", "Draws images from a trained checkpoint into the folder --out:\n"+
		"  "+gridFile+"     all images tiled in a grid (scaled up)\n"+
		"  "+imagesDir+"/      one PNG per image, 00000.png, 00001.png, ... (8-bit gray at the model's size: what FID tools read)\n"+
		"  "+npyFile+"   the same pixels as a NumPy array, uint8 [N, H, W, 1], 0..255 (np.load reads it)\n"+
		"  "+chainFile+"    the denoising chain, with --gif\n"+
		"Other files in the folder are left alone; sample refuses a folder whose "+imagesDir+"/ holds PNGs it would not\n"+
		"overwrite (an earlier, larger run), since FID tools would read them too.", stderr)
	fs.StringVar(&o.checkpoint, "checkpoint", "runs/train", "checkpoint file, or run folder (its latest checkpoint)")
	o.SamplerFlags.Register(fs)
	fs.IntVar(&o.n, "n", 64, "number of images")
	fs.IntVar(&o.batch, "batch", 64, "images per denoiser call")
	fs.Int64Var(&o.seed, "seed", 0, "seed of the starting noise and of every step's noise")
	fs.StringVar(&o.out, "out", "samples", "output folder (created if missing): "+gridFile+", "+imagesDir+"/, "+npyFile+" and "+chainFile+" (see above)")
	fs.BoolVar(&o.images, "images", true, "write "+imagesDir+"/, one PNG per image (--images=false: not)")
	fs.BoolVar(&o.npy, "npy", true, "write "+npyFile+" (--npy=false: not)")
	fs.BoolVar(&o.gif, "gif", false, "also write the denoising chain as an animated GIF, "+chainFile)
	fs.IntVar(&o.gifImages, "gif-images", 16, "images shown in each GIF frame")
	fs.IntVar(&o.chainEvery, "chain-every", 0, "record a GIF frame every N steps (0: about 25 frames)")
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	var c cli.Checks
	o.SamplerFlags.Validate(&c)
	c.Check(o.n >= 1 && o.n <= maxSamples, "--n=%d: must lie in [1, %d]", o.n, maxSamples)
	c.Check(o.batch >= 1, "--batch=%d: must be >= 1", o.batch)
	c.Check(o.gifImages >= 1, "--gif-images=%d: must be >= 1", o.gifImages)
	c.Check(o.chainEvery >= 0, "--chain-every=%d: must be >= 0", o.chainEvery)
	c.Check(o.out != "", "--out must not be empty")
	ext := strings.ToLower(filepath.Ext(o.out))
	c.Check(ext != ".png" && ext != ".gif", "--out=%q: --out is the output folder (it gets %s, %s/, %s; --gif writes %s there)",
		o.out, gridFile, imagesDir, npyFile, chainFile)
	return o, c.Err()
}

func main() { cli.Main("sample", parseFlags, run) }

func run(ctx context.Context, o *options, b compute.Backend, stdout, stderr io.Writer) error {
	if err := o.checkOut(); err != nil {
		return err
	}
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
	if o.gif {
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
	gif := ""
	if o.gif {
		gif = filepath.Join(o.out, chainFile)
	}
	paths, err := experiment.WriteSamples(res, filepath.Join(o.out, gridFile), gif, o.gifImages)
	if err != nil {
		return err
	}
	images, err := experiment.BatchOf(res.Images)
	if err != nil {
		return err
	}
	if o.images {
		dir := filepath.Join(o.out, imagesDir)
		if err := experiment.WriteImageFiles(dir, images); err != nil {
			return err
		}
		paths = append(paths, fmt.Sprintf("%s/ (%d PNGs)", dir, images.N))
	}
	if o.npy {
		path := filepath.Join(o.out, npyFile)
		if err := experiment.WriteNPY(path, images); err != nil {
			return err
		}
		paths = append(paths, path)
	}
	fmt.Fprintf(stdout, "sample: %d images in %.1fs -> %s\n", o.n, time.Since(start).Seconds(), strings.Join(paths, ", "))
	return nil
}

// checkOut fails, before anything is sampled, when --out is a file, or when its images/ folder holds
// PNGs that this run would not overwrite: FID tools read every image of the folder.
func (o *options) checkOut() error {
	if fi, err := os.Stat(o.out); err == nil && !fi.IsDir() {
		return fmt.Errorf("--out=%q is a file; --out is the output folder", o.out)
	}
	if !o.images {
		return nil
	}
	dir := filepath.Join(o.out, imagesDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	ours := map[string]bool{}
	for i := range o.n {
		ours[experiment.ImageFileName(i, o.n)] = true
	}
	var others []string
	for _, e := range entries {
		if strings.EqualFold(filepath.Ext(e.Name()), ".png") && !ours[e.Name()] {
			others = append(others, e.Name())
		}
	}
	if len(others) > 0 {
		return fmt.Errorf("%s holds %d PNGs that this run of %d images would not replace (e.g. %s): delete them or choose another --out",
			dir, len(others), o.n, others[0])
	}
	return nil
}
