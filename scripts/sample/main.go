// Command sample draws images from a trained checkpoint with DDIM, DPM-Solver++ or DDPM and writes
// them to the folder --out: a PNG grid, one PNG per image and a NumPy array (the inputs of FID tools
// and Python scripts), and on request an animated GIF of the denoising chain. The same seed gives the
// same images. A class-conditional model (train --classes) draws the digit asked for with
// classifier-free guidance (--digit, --guidance). --interpolate decodes a path between two noises
// (a strip and a GIF); --inpaint completes half of each of --n MNIST test digits.
//
//	go run ./scripts/sample --checkpoint runs/train --sampler ddim --sample-steps 10 --n 64 --out samples
//	go run ./scripts/sample --sampler ddpm --gif --out ddpm
//	go run ./scripts/sample --checkpoint runs/cond --digit 7 --guidance 2 --out sevens
//	go run ./scripts/sample --interpolate --n 12 --out strip
//	go run ./scripts/sample --inpaint lower --n 16 --out completed
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"

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
	inputsFile = "inputs.png"        // --inpaint: the masked test digits.
	interpFile = "interpolation.gif" // --interpolate: the strip as an animation.
	maxSamples = 100000
)

type options struct {
	cli.SamplerFlags
	cli.GuidanceFlags
	checkpoint, out, inpaint, data  string
	interpolate                     bool
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
		"  "+interpFile+" the strip as an animation, with --interpolate\n"+
		"  "+inputsFile+"   the halves given to the model, with --inpaint\n"+
		"Other files in the folder are left alone; sample refuses a folder whose "+imagesDir+"/ holds PNGs it would not\n"+
		"overwrite (an earlier, larger run), since FID tools would read them too.", stderr)
	fs.StringVar(&o.checkpoint, "checkpoint", "runs/train", "checkpoint file, or run folder (its latest checkpoint)")
	o.SamplerFlags.Register(fs)
	o.GuidanceFlags.Register(fs)
	fs.BoolVar(&o.interpolate, "interpolate", false, "draw --n images along a spherical path from the starting noise of --seed to that of --seed+1 "+
		"(a deterministic sampler: ddim with --eta 0, or dpm++), one row, and "+interpFile)
	fs.StringVar(&o.inpaint, "inpaint", "", fmt.Sprintf("complete --n MNIST test digits (chosen by --seed) of which this half is hidden: one of %v; "+
		"a class-conditional model gets each digit's own label unless --digit says otherwise", experiment.InpaintRegions))
	fs.StringVar(&o.data, "data", "", "with --inpaint: folder with the MNIST IDX files (default: $MNIST_DIR or the GoMNIST Go module)")
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
	o.GuidanceFlags.Validate(&c)
	c.Check(!o.interpolate || o.inpaint == "", "--interpolate and --inpaint: choose one")
	c.Check(!o.interpolate || o.n >= 2, "--interpolate needs --n >= 2 images")
	c.Check(!o.interpolate || o.Sampler == "dpm++" || (o.Sampler == "ddim" && o.Eta == 0),
		"--interpolate needs a deterministic sampler: ddim with --eta 0, or dpm++ (got %s, eta %g)", o.Sampler, o.Eta)
	c.Check(!o.interpolate || o.Digit != cli.DigitAll, "--interpolate: choose one --digit (or %s), not %s", cli.DigitNone, cli.DigitAll)
	c.Check(o.inpaint == "" || slices.Contains(experiment.InpaintRegions, o.inpaint), "--inpaint=%q: use one of %v", o.inpaint, experiment.InpaintRegions)
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
	opts := diffusion.SampleOptions{N: o.n, BatchSize: o.batch, Seed: o.seed, ChainEvery: every, Context: ctx}
	if opts.Labels, opts.Guidance, err = o.Conditioning(o.n, m.Meta.UNet.Classes); err != nil {
		return err
	}
	var inputs *tensors.Tensor  // --inpaint's masked digits.
	cols := m.Meta.UNet.Classes // A conditional model's digits in columns; 0: square-ish.
	switch {
	case o.interpolate:
		if opts.Labels != nil && o.Digit == "" {
			return fmt.Errorf("--interpolate with a class-conditional model: choose one --digit (or %s)", cli.DigitNone)
		}
		if opts.Init, err = interpolationNoise(o.seed, o.n, m.Meta.UNet.ImageSize); err != nil {
			return err
		}
		cols = o.n
	case o.inpaint != "":
		if inputs, err = o.inpaintOptions(&opts, m); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "sample: %s, model %s, %d images, seed %d, backend %s\n",
		smp, m.Meta.Summary(), o.n, o.seed, b.Name())
	progress := kernel.NewProgress(0, "sample").WithOutput(stderr, kernel.ProgressAuto).WithItems(min(o.batch, o.n), "img")
	opts.OnStep = func(done, total int) { progress.Update(done) }
	start := time.Now()
	res, err := m.Generator(b).Sample(smp, opts)
	progress.Done()
	if err != nil {
		return m.ExplainLoadError(err)
	}
	gif := ""
	if o.gif {
		gif = filepath.Join(o.out, chainFile)
	}
	paths, err := experiment.WriteSamples(res, filepath.Join(o.out, gridFile), gif, cols, o.gifImages)
	if err != nil {
		return err
	}
	if inputs != nil {
		path, err := o.writeInputs(inputs, cols)
		if err != nil {
			return err
		}
		paths = append(paths, path)
	}
	if o.interpolate {
		path := filepath.Join(o.out, interpFile)
		if err := writeStripGIF(path, res.Images); err != nil {
			return err
		}
		paths = append(paths, path)
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
