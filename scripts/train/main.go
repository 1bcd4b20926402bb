// Command train trains the diffusion U-Net on MNIST as a batch job: progress bar, the tutorial's
// log lines, a loss log (CSV) and curve (SVG), atomic checkpoints that --resume continues exactly,
// optionally a grid of samples every --sample-every steps, and at the end grids of samples drawn with
// DDIM, DPM-Solver++ and DDPM, with their denoising chains as GIFs. With --classes the model is
// class-conditional: the final grids have the digits 0-9 in columns, drawn with classifier-free
// guidance (--guidance).
//
// Training runs until --steps (or --epochs) are done; --minutes sets a time budget only when given
// (the default job, scripts/train.sh, passes --minutes 12 --classes).
//
//	go run ./scripts/train                      # the cpu preset for --steps 3000, no time limit
//	go run ./scripts/train --minutes 12 --classes   # the default job (scripts/train.sh)
//	go run ./scripts/train --preset tutorial --epochs 10 --out runs/tutorial
//	go run ./scripts/train --resume --out runs/train   # continue after a crash or Ctrl-C
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/godiffusion/godiffusion/diffusion"
	"github.com/godiffusion/godiffusion/diffusion/mnist"
	"github.com/godiffusion/godiffusion/experiment"
	"github.com/godiffusion/godiffusion/kernel"
	"github.com/godiffusion/godiffusion/layers"
	"github.com/godiffusion/godiffusion/scripts/internal/cli"
)

// options are the command-line flags.
type options struct {
	preset, schedule, out, data string
	prediction                  string
	T, epochs, steps, batch     int
	lr, minutes, ema, minSNR    float64
	seed                        int64
	ckptEvery, keep, logEvery   int
	resume, classes             bool
	labelDropout, guidance      float64
	ddpmSamples, ddimSamples    int
	dpmSamples, sampleEvery     int
	sampleSteps                 int
	eta                         float64
	spacing                     string

	// set holds the flags given on the command line.
	set map[string]bool

	// afterStep, when set (by tests), is called after every training step.
	afterStep func(step int64)
}

// Defaults of the main job: see the README for what they give on 2 CPU cores. There is no
// default time budget (--minutes 0): scripts/train.sh passes --minutes 12 for the default CPU job.
const (
	defaultPreset   = "cpu"
	defaultSchedule = diffusion.ScheduleCosine
	defaultSteps    = 3000
	defaultMinutes  = 0.0
	defaultBatch    = 16
	defaultEMA      = 0.999
)

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := cli.NewFlagSet("train", "Trains the diffusion U-Net on MNIST, then samples from it.", stderr)
	fs.StringVar(&o.preset, "preset", defaultPreset, "model preset: "+fmt.Sprint(experiment.PresetNames()))
	fs.StringVar(&o.schedule, "schedule", defaultSchedule, "noise schedule: cosine (improved DDPM), scaled-linear, or linear (the tutorial's)")
	fs.IntVar(&o.T, "timesteps", diffusion.DefaultT, "number of diffusion steps T")
	fs.IntVar(&o.epochs, "epochs", 0, "epochs to train (overrides --steps when > 0)")
	fs.IntVar(&o.steps, "steps", defaultSteps, "training steps (batches) to train in total")
	fs.Float64Var(&o.minutes, "minutes", defaultMinutes, "time budget: stop training after this many minutes of this invocation even if --steps or --epochs is not reached; "+
		"the step count then depends on the machine's speed (0, the default: no limit; scripts/train.sh passes 12)")
	fs.IntVar(&o.batch, "batch", defaultBatch, "batch size")
	fs.Float64Var(&o.lr, "lr", 0, "Adam learning rate (0: the preset's default)")
	fs.Float64Var(&o.ema, "ema", defaultEMA, "decay of the moving average of the weights used for sampling (0: sample from the raw weights)")
	fs.StringVar(&o.prediction, "prediction", string(diffusion.PredictX0), "what the U-Net learns to output: x0 (the clean image; "+
		"recognisable shapes earliest in training), v (velocity) or epsilon (the noise, as the tutorial)")
	fs.Float64Var(&o.minSNR, "min-snr", 0, "Min-SNR-gamma loss weighting: gamma, e.g. 5 (0: the tutorial's unweighted loss)")
	fs.BoolVar(&o.classes, "classes", false, "train a class-conditional model of the digits 0-9 (classifier-free guidance: sample --digit, --guidance)")
	fs.Float64Var(&o.labelDropout, "label-dropout", diffusion.DefaultLabelDropout, "with --classes: the probability that a training image's label is dropped, so the model also learns to draw without one")
	fs.Float64Var(&o.guidance, "guidance", experiment.DefaultGuidance, "with --classes: the guidance scale of the final and --sample-every samples (columns are the digits 0-9)")
	fs.Int64Var(&o.seed, "seed", 0, "seed for initialisation, data order, timesteps and noise")
	fs.StringVar(&o.out, "out", "runs/train", "output folder: checkpoints, loss log and pictures (locked: a second train on the same folder stops at once)")
	fs.StringVar(&o.data, "data", "", "folder with the MNIST IDX files (default: $MNIST_DIR or the GoMNIST Go module)")
	fs.IntVar(&o.ckptEvery, "ckpt-every", 250, "save a checkpoint every N steps")
	fs.IntVar(&o.keep, "keep", 3, "number of checkpoints to keep")
	fs.IntVar(&o.logEvery, "log-every", 100, "print the loss every N steps")
	fs.BoolVar(&o.resume, "resume", false, "continue from the last checkpoint in --out")
	fs.IntVar(&o.ddpmSamples, "ddpm-samples", 8, "images drawn with DDPM at the end (0: none)")
	fs.IntVar(&o.ddimSamples, "ddim-samples", 64, "images drawn with DDIM at the end (0: none)")
	fs.IntVar(&o.dpmSamples, "dpm-samples", 64, "images drawn with DPM-Solver++(2M) at the end, on DDIM's steps and spacing: cleaner strokes for the same network calls (0: none)")
	fs.IntVar(&o.sampleSteps, "sample-steps", diffusion.DefaultDDIMSteps, cli.StepsUsage+"; for the final and --sample-every samples")
	fs.Float64Var(&o.eta, "eta", 0, "DDIM eta in [0, 1] for the final and --sample-every samples: 0 deterministic, 1 DDPM-like noise")
	fs.StringVar(&o.spacing, "spacing", string(diffusion.DefaultSpacing), cli.SpacingUsage+"; for the final and --sample-every samples")
	fs.IntVar(&o.sampleEvery, "sample-every", 0, fmt.Sprintf("every N training steps, write a grid of %d DDIM samples (--sample-steps, --eta, --spacing; the moving-average weights) "+
		"to %s/step-NNNNNNNN.png in --out; the time counts in --minutes (0: never)", periodicImages, periodicDir))
	for old, name := range flagAliases {
		cli.Alias(fs, old, name)
	}
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[cmp.Or(flagAliases[f.Name], f.Name)] = true })
	return o, o.validate()
}

// flagAliases maps the deprecated spellings of flags to their names, the same in train, sample and
// evaluate.
var flagAliases = map[string]string{"T": "timesteps", "ddim-steps": "sample-steps", "ddim-eta": "eta", "ddim-spacing": "spacing"}

func (o *options) validate() error {
	var c cli.Checks
	check := c.Check
	_, err := experiment.Preset(o.preset)
	check(err == nil, "--preset: %v", err)
	_, err = diffusion.ScheduleByName(o.schedule, max(o.T, 1))
	check(err == nil, "--schedule: %v", err)
	check(o.T >= 2 && o.T <= 10000, "--timesteps=%d: must lie in [2, 10000]", o.T)
	check(o.epochs >= 0, "--epochs=%d: must be >= 0", o.epochs)
	check(o.steps >= 1 || o.epochs > 0, "--steps=%d: must be >= 1", o.steps)
	check(o.minutes >= 0 && !math.IsInf(o.minutes, 0), "--minutes=%g: must be >= 0", o.minutes)
	check(o.batch >= 1 && o.batch <= 4096, "--batch=%d: must lie in [1, 4096]", o.batch)
	check(o.lr >= 0 && o.lr < 1 && !math.IsNaN(o.lr), "--lr=%g: must lie in [0, 1)", o.lr)
	check(o.ema >= 0 && o.ema < 1, "--ema=%g: must lie in [0, 1)", o.ema)
	check(o.minSNR >= 0 && o.minSNR <= 1e6, "--min-snr=%g: must lie in [0, 1e6]", o.minSNR)
	p, err := diffusion.ParsePrediction(o.prediction)
	check(err == nil && string(p) == o.prediction, "--prediction=%q: use one of %q", o.prediction, diffusion.Predictions)
	check(o.ckptEvery >= 1, "--ckpt-every=%d: must be >= 1", o.ckptEvery)
	check(o.keep >= 1, "--keep=%d: must be >= 1", o.keep)
	check(o.logEvery >= 1, "--log-every=%d: must be >= 1", o.logEvery)
	check(o.ddpmSamples >= 0 && o.ddimSamples >= 0 && o.dpmSamples >= 0, "--ddpm-samples, --ddim-samples and --dpm-samples must be >= 0")
	check(o.sampleSteps >= 1 && o.sampleSteps <= o.T, "--sample-steps=%d: must lie in [1, T=%d]", o.sampleSteps, o.T)
	check(o.eta >= 0 && o.eta <= 1, "--eta=%g: must lie in [0, 1]", o.eta)
	check(o.labelDropout >= 0 && o.labelDropout <= 1, "--label-dropout=%g: must lie in [0, 1]", o.labelDropout)
	check(o.guidance >= 0 && o.guidance <= 100, "--guidance=%g: must lie in [0, 100]", o.guidance)
	c.CheckSpacing("spacing", o.spacing)
	check(o.sampleEvery >= 0, "--sample-every=%d: must be >= 0", o.sampleEvery)
	check(o.out != "", "--out must not be empty")
	return c.Err()
}

// totalSteps is the step count the run trains to: --epochs epochs of stepsPerEpoch batches when
// --epochs > 0, else --steps. --minutes may stop it earlier.
func (o *options) totalSteps(stepsPerEpoch int) int64 {
	if o.epochs > 0 {
		return int64(o.epochs) * int64(stepsPerEpoch)
	}
	return int64(o.steps)
}

// presetLearningRate is the default Adam learning rate per preset: the tutorial's 1e-4 for its
// network; the small CPU models converge faster with a larger one.
func presetLearningRate(preset string) float64 {
	if preset == "tutorial" {
		return diffusion.DefaultLearningRate
	}
	return 1e-3
}

func main() { cli.Main("train", parseFlags, run) }

// run trains as o says. It is the whole command but flag parsing, so tests can call it.
func run(ctx context.Context, o *options, b compute.Backend, stdout, stderr io.Writer) error {
	lock, err := lockRun(o)
	if err != nil {
		return err
	}
	defer lock.Unlock() // Also on errors and Ctrl-C; a crash or kill releases it too.
	meta, store, history, err := startOrResume(o)
	if err != nil {
		return err
	}
	schedule, err := meta.BuildSchedule()
	if err != nil {
		return err
	}
	dir, err := mnist.ResolveDir(o.data)
	if err != nil {
		return err
	}
	data, err := mnist.Load(dir, mnist.Train)
	if err != nil {
		return err
	}
	batcher, err := mnist.NewBatcher(data, mnist.BatcherConfig{
		BatchSize: meta.BatchSize, Seed: uint64(meta.Seed), Size: meta.UNet.ImageSize, Start: meta.Position})
	if err != nil {
		return err
	}
	total := o.totalSteps(batcher.StepsPerEpoch())
	trainer, err := diffusion.NewTrainer(b, store, schedule, experiment.Denoiser(meta.UNet),
		meta.TrainConfig())
	if err != nil {
		return err
	}
	prediction, _ := diffusion.ParsePrediction(string(meta.Prediction))
	conditioning := "unconditional"
	if meta.UNet.Classes > 0 {
		conditioning = fmt.Sprintf("%d classes (label dropout %g)", meta.UNet.Classes, meta.LabelDropout)
	}
	fmt.Fprintf(stdout, "train: preset %s, %s, %s, %s prediction, batch %d, lr %g, seed %d, backend %s\n",
		meta.Preset, conditioning, schedule.Name, prediction, meta.BatchSize, meta.LearningRate, meta.Seed, b.Name())
	fmt.Fprintf(stdout, "train: %d steps (%d per epoch), starting at step %d; output in %s\n",
		total, batcher.StepsPerEpoch(), meta.Step, o.out)

	var deadline time.Time
	if o.minutes > 0 {
		deadline = time.Now().Add(time.Duration(o.minutes * float64(time.Minute)))
	}
	loop := &experiment.Loop{Out: o.out, Meta: meta, Store: store, Trainer: trainer, Batcher: batcher,
		Steps: total, Deadline: deadline, CheckpointEvery: o.ckptEvery, Keep: o.keep, LogEvery: o.logEvery,
		Progress: kernel.NewProgress(int(total), "train").WithOutput(stderr, kernel.ProgressAuto).
			WithItems(meta.BatchSize, "img").WithStart(int(meta.Step)).WithDeadline(deadline),
		History: history,
		AfterStep: func(done int64) error {
			if o.afterStep != nil {
				o.afterStep(done)
			}
			if o.sampleEvery > 0 && done%int64(o.sampleEvery) == 0 && ctx.Err() == nil {
				path, err := periodicSamples(ctx, o, b, meta, store, done)
				switch {
				case ctx.Err() != nil: // Ctrl-C: the loop saves and stops.
				case err != nil: // A picture is not worth the run.
					fmt.Fprintf(stderr, "Samples at step %d failed: %v\n", done, err)
				default:
					fmt.Fprintf(stderr, "Samples at step %d: %s\n", done, path)
				}
			}
			return nil
		}}
	switch err := loop.Run(ctx); {
	case errors.Is(err, experiment.ErrDeadline):
		fmt.Fprintf(stderr, "Time budget of %g minutes reached after %d steps (continue with --resume --out %s)\n",
			o.minutes, trainer.GlobalStep(), o.out)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return fmt.Errorf("%w at step %d: checkpoint saved; continue with --resume --out %s", cli.ErrInterrupted, trainer.GlobalStep(), o.out)
	case err != nil:
		return fmt.Errorf("%w; the last good checkpoint is kept in %s", err, filepath.Join(o.out, experiment.CheckpointDir))
	}
	if err := kernel.WriteFile(filepath.Join(o.out, "loss.svg"), []byte(experiment.LossCurveSVG(loop.History))); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "train: model of %d parameters; final checkpoint %s\n", layers.NumTrainableParameters(store), experiment.CheckpointPath(o.out, trainer.GlobalStep()))
	return finalSamples(ctx, o, b, meta, stdout, stderr)
}

// lockRun makes this process the only writer of --out, before anything reads or writes the
// folder: a second train on the same --out stops here, naming the process that holds it. A --resume
// of a folder that does not exist takes no lock, so that startOrResume refuses it without creating
// the folder.
func lockRun(o *options) (*experiment.RunLock, error) {
	if _, err := os.Stat(o.out); o.resume && errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	lock, err := experiment.LockRun(o.out)
	if err != nil {
		return nil, fmt.Errorf("%w (--out)", err)
	}
	return lock, nil
}

// startOrResume returns the run's metadata, its variables and the loss history so far.
func startOrResume(o *options) (*experiment.Meta, *model.Store, []experiment.LossRecord, error) {
	existing, err := experiment.ListCheckpoints(o.out)
	if err != nil {
		return nil, nil, nil, err
	}
	if !o.resume {
		if len(existing) > 0 {
			return nil, nil, nil, fmt.Errorf("%s already holds checkpoints: pass --resume to continue that run, or choose another --out", o.out)
		}
		cfg, _ := experiment.Preset(o.preset)
		dropout := 0.0
		if o.classes {
			cfg.Classes, dropout = mnist.NumClasses, o.labelDropout
		}
		lr := o.lr
		if lr == 0 {
			lr = presetLearningRate(o.preset)
		}
		meta := &experiment.Meta{Preset: o.preset, UNet: cfg, Schedule: o.schedule, T: o.T, Seed: o.seed,
			BatchSize: o.batch, LearningRate: lr, EMADecay: o.ema, MinSNRGamma: o.minSNR,
			Prediction: diffusion.Prediction(o.prediction), LabelDropout: dropout}
		return meta, model.NewStore(), nil, nil
	}
	if len(existing) == 0 {
		return nil, nil, nil, fmt.Errorf("--resume: no checkpoint in %s to resume from (run without --resume to start)", filepath.Join(o.out, experiment.CheckpointDir))
	}
	m, err := experiment.LoadRawModel(existing[len(existing)-1])
	if err != nil {
		return nil, nil, nil, err
	}
	if err := o.checkResumable(&m.Meta); err != nil {
		return nil, nil, nil, err
	}
	history, err := experiment.ReadLosses(o.out, int(m.Meta.Step))
	if err != nil {
		return nil, nil, nil, err
	}
	return &m.Meta, m.Store, history, nil
}

// checkResumable rejects flags given with --resume that contradict the run being resumed.
func (o *options) checkResumable(meta *experiment.Meta) error {
	var errs []error
	mismatch := func(name string, given, saved any) {
		if o.set[name] && fmt.Sprint(given) != fmt.Sprint(saved) {
			errs = append(errs, fmt.Errorf("--%s=%v, but the run in %s was started with %v", name, given, o.out, saved))
		}
	}
	mismatch("preset", o.preset, meta.Preset)
	mismatch("schedule", o.schedule, meta.Schedule)
	mismatch("timesteps", o.T, meta.T)
	mismatch("batch", o.batch, meta.BatchSize)
	mismatch("seed", o.seed, meta.Seed)
	mismatch("ema", o.ema, meta.EMADecay)
	mismatch("min-snr", o.minSNR, meta.MinSNRGamma)
	saved, _ := diffusion.ParsePrediction(string(meta.Prediction))
	mismatch("prediction", o.prediction, saved)
	mismatch("classes", o.classes, meta.UNet.Classes > 0)
	mismatch("label-dropout", o.labelDropout, meta.LabelDropout)
	if len(errs) > 0 {
		errs = append(errs, fmt.Errorf("drop those flags to resume, or start a new run with another --out"))
	}
	return errors.Join(errs...)
}

// sampleRun is one grid of samples that train draws.
type sampleRun struct {
	name    string // in the file names: samples_<name>.png, chain_<name>.gif
	n       int
	sampler diffusion.Sampler
	every   int // a chain frame every N steps (0: no chain)
	// guidance is the guidance scale for a class-conditional model (labels cycle through the digits).
	guidance float64
}

// ddim is the DDIM sampler of the final and the --sample-every samples. x0 is clipped as diffusers
// does by default: an undertrained model's deterministic DDIM trajectory otherwise amplifies its
// errors where ᾱ is tiny (cosine: 6e-8 at T-1).
func (o *options) ddim() diffusion.Sampler {
	return diffusion.DDIM{Steps: o.sampleSteps, Eta: o.eta, Clip: true, Spacing: diffusion.Spacing(o.spacing)}
}

// drawSamples draws r.n images with gen (noise seeded by seed) and writes their grid to pngPath and,
// when r.every > 0, their chain to gifPath; progress goes to stderr. It returns the paths written.
func drawSamples(ctx context.Context, gen *diffusion.Generator, r sampleRun, seed int64, pngPath, gifPath string, stderr io.Writer) ([]string, error) {
	progress := kernel.NewProgress(0, r.name).WithOutput(stderr, kernel.ProgressAuto).WithItems(r.n, "img")
	opts := diffusion.SampleOptions{N: r.n, BatchSize: 64, Seed: seed,
		ChainEvery: r.every, Context: ctx, OnStep: func(done, total int) { progress.Update(done) }}
	if gen.Classes > 0 {
		opts.Labels, opts.Guidance = experiment.Labels(r.n, gen.Classes), r.guidance
	}
	res, err := gen.Sample(r.sampler, opts)
	progress.Done()
	if err != nil {
		return nil, err
	}
	if r.every == 0 {
		gifPath = ""
	}
	return experiment.WriteSamples(res, pngPath, gifPath, gen.Classes, 16) // A conditional model's digits in columns.
}

// periodicImages and periodicDir: the --sample-every grids' size and folder (in --out).
const (
	periodicImages = 16
	periodicDir    = "samples"
)

// periodicSamples writes the --sample-every grid of a step, from a copy of the weights training
// holds now (their moving average when kept), and returns its path.
func periodicSamples(ctx context.Context, o *options, b compute.Backend, meta *experiment.Meta, store *model.Store, step int64) (string, error) {
	m, err := experiment.SnapshotModel(*meta, store)
	if err != nil {
		return "", err
	}
	path := filepath.Join(o.out, periodicDir, fmt.Sprintf("step-%08d.png", step))
	_, err = drawSamples(ctx, m.Generator(b), sampleRun{"samples", periodicImages, o.ddim(), 0, o.guidance}, meta.Seed, path, "", io.Discard)
	return path, err
}

// finalSamples draws DDIM, DPM-Solver++ and DDPM samples from the trained model and writes grids and
// chain GIFs.
func finalSamples(ctx context.Context, o *options, b compute.Backend, meta *experiment.Meta, stdout, stderr io.Writer) error {
	m, err := experiment.LoadModel(o.out)
	if err != nil {
		return err
	}
	gen := m.Generator(b)
	runs := []sampleRun{
		{"ddim", o.ddimSamples, o.ddim(), 1, o.guidance},
		{"dpm", o.dpmSamples, diffusion.DPMSolver{Steps: o.sampleSteps, Clip: true, Spacing: diffusion.Spacing(o.spacing)}, 1, o.guidance},
		{"ddpm", o.ddpmSamples, diffusion.DDPM{Clip: true}, max(1, meta.T/25), o.guidance},
	}
	for _, r := range runs {
		if r.n == 0 {
			continue
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w before the final samples (the checkpoint is saved)", cli.ErrInterrupted)
		}
		start := time.Now()
		paths, err := drawSamples(ctx, gen, r, meta.Seed, filepath.Join(o.out, "samples_"+r.name+".png"),
			filepath.Join(o.out, "chain_"+r.name+".gif"), stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "train: %s: %d images in %.1fs -> %v\n", r.sampler, r.n, time.Since(start).Seconds(), paths)
	}
	return nil
}
