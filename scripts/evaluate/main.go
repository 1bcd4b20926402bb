// Command evaluate scores a trained diffusion model: it draws --n images with DDIM or DDPM and
// measures with an MNIST classifier (package diffusion/quality) how much they look like digits:
// mean confidence, fraction classified with probability >= 0.9, digits produced, the classifier
// score, and the Fréchet distance of the classifier's features to those of the MNIST test set.
// The same scores are printed for n real MNIST training images (the best one can expect at that n)
// and for n images of Gaussian noise clipped to [-1, 1] (the worst), since the scores depend on n.
// A class-conditional model (train --classes) draws the digits of --digit (default: 0-9 in turn) at
// the classifier-free guidance scale --guidance.
//
// Two other modes print their own table instead of that one (both may be given, then both tables):
//
//   - --guidance-table, for a class-conditional model: for each guidance scale w of
//     --guidance-scales, --n images drawn from the same seed, the digits 0-9 in turn, and per w the
//     fraction of each digit's images that the classifier reads as that digit, their mean over all
//     images, the fraction of confident images and the Fréchet distance.
//   - --inversion: the DDIM inversion round trip of --n MNIST test images: for each step count of
//     --inversion-steps, the images are inverted to noise (diffusion.DDIMInversion) and decoded back
//     with deterministic DDIM (eta 0, no clipping, --spacing for both; a class-conditional model
//     uses each image's own label without guidance), and the table gives the reconstruction's RMSE
//     and PSNR, the standard deviation of the noise found (about 1 when it looks like the sampler's
//     starting noise) and the seconds taken. It needs no classifier.
//
// The classifier is trained once (2 epochs of MNIST, a few minutes on 2 CPU cores) and cached
// (--classifier-cache, default in the user's cache folder). Nothing else is written. With --json the
// scores are printed as one JSON object instead of the tables (for scripts), and the log lines go to
// stderr.
//
//	go run ./scripts/evaluate --checkpoint runs/train
//	go run ./scripts/evaluate --checkpoint runs/train --sampler ddpm --n 200
//	go run ./scripts/evaluate --checkpoint runs/train --json | jq .scores.generated.frechet_distance
//	go run ./scripts/evaluate --checkpoint runs/cond --digit 7 --guidance 2
//	go run ./scripts/evaluate --checkpoint runs/cond --guidance-table --guidance-scales 0,1,3,7 --n 200
//	go run ./scripts/evaluate --checkpoint runs/train --inversion --inversion-steps 10,50,200 --n 100
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/godiffusion/godiffusion/diffusion"
	"github.com/godiffusion/godiffusion/diffusion/mnist"
	"github.com/godiffusion/godiffusion/diffusion/quality"
	"github.com/godiffusion/godiffusion/experiment"
	"github.com/godiffusion/godiffusion/kernel"
	"github.com/godiffusion/godiffusion/scripts/internal/cli"
)

type options struct {
	cli.SamplerFlags
	cli.GuidanceFlags
	checkpoint, data, classifierCache string
	n, batch                          int
	seed                              int64
	json                              bool

	guidanceTable, inversion       bool
	guidanceScales, inversionSteps string          // The lists as given.
	scales                         []float64       // --guidance-scales, parsed by validate.
	invSteps                       []int           // --inversion-steps, parsed by validate.
	set                            map[string]bool // Flags given on the command line.

	// Set by tests: training options of the classifier (when the cache must be built) and the
	// number of test images of the Fréchet reference (0: all 10000).
	classifierTrain quality.TrainOptions
	refExamples     int
}

// maxImages bounds --n: the real-image reference row draws n distinct training images.
const maxImages = 60000

// maxTestImages bounds --n with --inversion, which inverts n distinct MNIST test images.
const maxTestImages = 10000

// maxGuidance bounds the guidance scales, as --guidance.
const maxGuidance = 100

// parseFlags parses and validates the command line.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := cli.NewFlagSet("evaluate", "Samples images from a trained checkpoint and scores them with an MNIST classifier,\n"+
		"beside real MNIST images and clipped Gaussian noise at the same number of images.\n"+
		"--guidance-table (class-conditional models) and --inversion print their own tables instead.", stderr)
	fs.StringVar(&o.checkpoint, "checkpoint", "runs/train", "checkpoint file, or run folder (its latest checkpoint) written by scripts/train")
	o.SamplerFlags.Register(fs)
	o.GuidanceFlags.Register(fs)
	fs.IntVar(&o.n, "n", 500, "number of images per row (generated, real, noise; or per guidance scale, per inversion step count); scores depend on it")
	fs.IntVar(&o.batch, "batch", 64, "images per denoiser call")
	fs.Int64Var(&o.seed, "seed", 0, "seed of the sampler's noise, of the real images' choice and of the noise row")
	fs.StringVar(&o.data, "data", "", "folder with the MNIST IDX files (default: $MNIST_DIR or the GoMNIST Go module)")
	fs.StringVar(&o.classifierCache, "classifier-cache", "",
		"file caching the MNIST classifier (default: $"+quality.CacheEnv+" or "+quality.DefaultCachePath()+")")
	fs.BoolVar(&o.json, "json", false, "print the scores as one JSON object (model, sampler, n, and per row generated, real, noise: "+
		"confidence, confident fraction, digits, classifier score, Fréchet distance, digit counts; guidance_table and inversion "+
		"hold the rows of those modes) instead of the tables; the log lines go to stderr")
	fs.BoolVar(&o.guidanceTable, "guidance-table", false, "instead of the standard table, for a class-conditional model (train --classes): "+
		"sample --n images, the digits 0-9 in turn, with --sampler at each scale of --guidance-scales (same seed for all) and print per scale "+
		"the fraction of each digit's images that the classifier reads as that digit, their mean over all images, the fraction "+
		"confident and the Fréchet distance")
	fs.StringVar(&o.guidanceScales, "guidance-scales", "0,1,2,3,5", "with --guidance-table: comma-separated guidance scales w in "+
		"[0, 100] (0 ignores the digit, 1 is plain conditional sampling)")
	fs.BoolVar(&o.inversion, "inversion", false, "instead of the standard table: DDIM inversion round trip of --n MNIST test images. "+
		"For each count of --inversion-steps they are inverted to noise and decoded back with deterministic DDIM (eta 0 and no "+
		"clipping whatever --eta and --clip say, to measure the round trip alone; --spacing for both; a class-conditional model "+
		"uses each image's own label, guidance 1). Prints the reconstruction's RMSE (pixels in [-1, 1]) and PSNR (dB, for the "+
		"range 2), the standard deviation of the noise found (about 1 is good) and the seconds taken. Needs no classifier")
	fs.StringVar(&o.inversionSteps, "inversion-steps", "5,10,20,50,100,200", "with --inversion: comma-separated DDIM step counts, "+
		"each in [1, T] of the model")
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	return o, o.validate()
}

// validate checks the flags and parses the lists of --guidance-scales and --inversion-steps.
func (o *options) validate() error {
	var c cli.Checks
	c.Check(o.checkpoint != "", "--checkpoint must not be empty")
	o.SamplerFlags.Validate(&c)
	o.GuidanceFlags.Validate(&c)
	c.Check(o.n >= 2 && o.n <= maxImages, "--n=%d: must lie in [2, %d] (the Fréchet distance needs 2 images)", o.n, maxImages)
	c.Check(!o.inversion || o.n <= maxTestImages, "--n=%d: --inversion takes at most the %d MNIST test images", o.n, maxTestImages)
	c.Check(o.batch >= 1, "--batch=%d: must be >= 1", o.batch)
	var err error
	o.scales, err = parseList(o.guidanceScales, parseScale)
	c.Check(err == nil, "--guidance-scales=%q: %v", o.guidanceScales, err)
	o.invSteps, err = parseList(o.inversionSteps, parseSteps)
	c.Check(err == nil, "--inversion-steps=%q: %v", o.inversionSteps, err)
	c.Check(o.guidanceTable || !o.set["guidance-scales"], "--guidance-scales is only read by --guidance-table: add that, or leave it out")
	c.Check(o.inversion || !o.set["inversion-steps"], "--inversion-steps is only read by --inversion: add that, or leave it out")
	for _, name := range []string{"digit", "guidance"} {
		c.Check(!o.set[name] || o.standard(), "--%s chooses the standard table's samples, which --guidance-table and --inversion replace "+
			"(the guidance table draws the digits 0-9 at each of --guidance-scales, the inversion uses the test images' labels): leave it out", name)
	}
	return c.Err()
}

// standard tells whether the standard table (generated, real, noise) is asked for: no other mode is.
func (o *options) standard() bool { return !o.guidanceTable && !o.inversion }

// parseList parses a comma-separated list with parse, which also checks each value.
func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	var list []T
	for _, field := range strings.Split(s, ",") {
		field = strings.TrimSpace(field)
		if field == "" {
			return nil, fmt.Errorf("empty entry: separate the values with single commas")
		}
		v, err := parse(field)
		if err != nil {
			return nil, err
		}
		list = append(list, v)
	}
	return list, nil
}

// parseScale parses a guidance scale in [0, maxGuidance].
func parseScale(s string) (float64, error) {
	w, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not a number", s)
	case !(w >= 0 && w <= maxGuidance):
		return 0, fmt.Errorf("w=%s must lie in [0, %d]", s, maxGuidance)
	}
	return w, nil
}

// parseSteps parses a step count >= 1 (the model's T bounds it too, checked once it is loaded).
func parseSteps(s string) (int, error) {
	steps, err := strconv.Atoi(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not an integer", s)
	case steps < 1:
		return 0, fmt.Errorf("%d steps: each count must be >= 1", steps)
	}
	return steps, nil
}

func main() { cli.Main("evaluate", parseFlags, run) }

// row is one line of the results table.
type row struct {
	name   string
	scores *quality.Scores
}

// evaluator holds what the modes share: the model, its generator and the outputs.
type evaluator struct {
	o           *options
	ctx         context.Context
	m           *experiment.Model
	gen         *diffusion.Generator
	stderr, log io.Writer // Progress bars; log lines (stdout, or stderr with --json).
}

func run(ctx context.Context, o *options, b compute.Backend, stdout, stderr io.Writer) error {
	// Everything that can fail fast does, before the classifier and the sampler run.
	m, err := o.SamplerFlags.LoadModel(o.checkpoint)
	if err != nil {
		return err
	}
	if size := m.Meta.UNet.ImageSize; size != quality.ImageSize {
		return fmt.Errorf("the model draws %dx%d images; the MNIST classifier takes %dx%d", size, size, quality.ImageSize, quality.ImageSize)
	}
	classes := m.Meta.UNet.Classes
	var labels []int // The standard table's conditioning.
	var w float64
	if o.standard() {
		if labels, w, err = o.GuidanceFlags.Conditioning(o.n, classes); err != nil {
			return err
		}
	}
	if o.guidanceTable && classes != quality.NumClasses {
		return fmt.Errorf("--guidance-table needs a class-conditional model of the %d digits, the checkpoint's has %d classes "+
			"(0: unconditional): train one with train --classes", quality.NumClasses, classes)
	}
	var smp diffusion.Sampler // The sampler of the standard table and of the guidance table.
	if o.standard() || o.guidanceTable {
		if smp, err = o.SamplerFlags.Build(m.Meta.T); err != nil {
			return err
		}
		if _, err := smp.Plan(m.Schedule); err != nil {
			return err
		}
	}
	if o.inversion {
		for _, steps := range o.invSteps {
			if steps > m.Meta.T {
				return fmt.Errorf("--inversion-steps=%q: %d steps exceed the model's T=%d; give counts in [1, %d]",
					o.inversionSteps, steps, m.Meta.T, m.Meta.T)
			}
		}
	}
	dir, err := mnist.ResolveDir(o.data)
	if err != nil {
		return err
	}
	var train, test *mnist.Dataset
	if o.standard() {
		if train, err = mnist.Load(dir, mnist.Train); err != nil {
			return err
		}
	}
	if o.inversion {
		if test, err = mnist.Load(dir, mnist.Test); err != nil {
			return err
		}
	}

	e := &evaluator{o: o, ctx: ctx, m: m, gen: m.Generator(b), stderr: stderr, log: stdout}
	if o.json { // The log lines; with --json stdout holds the JSON object alone.
		e.log = stderr
	}
	file, err := experiment.ResolveCheckpoint(o.checkpoint)
	if err != nil {
		return err
	}
	r := report{
		Checkpoint: file,
		Model: modelInfo{Preset: m.Meta.Preset, Step: m.Meta.Step, Schedule: m.Meta.Schedule, T: m.Meta.T,
			Prediction: string(m.Meta.Prediction), MovingAverage: m.EMA, Summary: m.Meta.Summary()},
		N: o.n, Seed: o.seed, Backend: b.Name(),
	}
	var what []string // What is evaluated, for the first log line.
	if smp != nil {
		plan, _ := smp.Plan(m.Schedule)
		r.Sampler = &samplerInfo{Name: o.Sampler, Description: fmt.Sprint(smp), Steps: len(plan), Eta: o.Eta, Spacing: o.Spacing,
			Variance: o.Variance, Clip: o.Clip}
		what = append(what, fmt.Sprint(smp))
	}
	if o.standard() && classes > 0 {
		digit := o.Digit
		if digit == "" {
			digit = cli.DigitAll
		}
		r.Conditioning = &conditioningInfo{Digit: digit, Guidance: w}
		what = append(what, describeConditioning(digit, labels, w))
	}
	if o.guidanceTable {
		what = append(what, "guidance table at w = "+o.guidanceScales)
	}
	if o.inversion {
		what = append(what, fmt.Sprintf("DDIM inversion round trip of MNIST test images at %s steps (spacing %s)", o.inversionSteps, o.Spacing))
	}
	fmt.Fprintf(e.log, "evaluate: model %s, %s, %d images per row, seed %d, backend %s\n",
		m.Meta.Summary(), strings.Join(what, ", "), o.n, o.seed, b.Name())

	var clf *quality.Classifier
	var ref *quality.Gaussian
	if smp != nil {
		if clf, ref, err = e.loadClassifier(b, dir, &r); err != nil {
			return err
		}
	}
	var tables []func(io.Writer) error // The tables to print, in order, without --json.
	if o.standard() {
		rows, took, err := e.standardRows(smp, clf, ref, train, labels, w)
		if err != nil {
			return err
		}
		r.SamplingSeconds = took.Seconds()
		r.Scores = &scoresJSON{Generated: rowJSON(rows[0]), Real: rowJSON(rows[1]), Noise: rowJSON(rows[2])}
		tables = append(tables, func(w io.Writer) error { return printTable(w, rows) })
	}
	if o.guidanceTable {
		if r.GuidanceTable, err = e.guidanceRows(smp, clf, ref); err != nil {
			return err
		}
		tables = append(tables, func(w io.Writer) error { return printGuidanceTable(w, r.GuidanceTable) })
	}
	if o.inversion {
		if r.Inversion, err = e.inversionRows(test); err != nil {
			return err
		}
		tables = append(tables, func(w io.Writer) error { return printInversionTable(w, r.Inversion) })
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	for i, table := range tables {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		if err := table(stdout); err != nil {
			return err
		}
	}
	return nil
}

// describeConditioning says which labels (digit is a --digit value, never "") and guidance scale a
// class-conditional model samples with.
func describeConditioning(digit string, labels []int, w float64) string {
	switch {
	case labels == nil:
		return "no label"
	case digit == cli.DigitAll:
		return fmt.Sprintf("digits 0-9 in turn at guidance %g", w)
	}
	return fmt.Sprintf("digit %s at guidance %g", digit, w)
}

// loadClassifier loads (or trains and caches) the MNIST classifier and the Gaussian of its features
// on the MNIST test set, logs its accuracy and records both in r.
func (e *evaluator) loadClassifier(b compute.Backend, dir string, r *report) (*quality.Classifier, *quality.Gaussian, error) {
	trainOpts := e.o.classifierTrain
	trainOpts.Progress = e.stderr
	clf, err := quality.LoadOrTrainClassifierWith(b, e.o.classifierCache, dir, trainOpts)
	if err != nil {
		return nil, nil, fmt.Errorf("classifier: %w", err)
	}
	ref, err := clf.ReferenceGaussian(dir, e.o.refExamples)
	if err != nil {
		return nil, nil, fmt.Errorf("classifier reference: %w", err)
	}
	accuracy, testAccuracy := "not measured", math.NaN() // NaN: null in JSON.
	if clf.Meta.TestAccuracy >= 0 {
		accuracy = fmt.Sprintf("%.2f%% on %d test images", 100*clf.Meta.TestAccuracy, clf.Meta.TestExamples)
		testAccuracy = clf.Meta.TestAccuracy
	}
	fmt.Fprintf(e.log, "evaluate: classifier accuracy %s; Fréchet distance to the features of %d MNIST test images\n",
		accuracy, ref.N)
	r.Classifier = &classifierInfo{TestAccuracy: jsonFloat(testAccuracy), TestExamples: clf.Meta.TestExamples, ReferenceImages: ref.N}
	r.ConfidentThreshold = quality.ConfidentThreshold
	return clf, ref, nil
}

// sample runs smp on --n images (opts sets what else it needs: labels, guidance, starting images)
// with a progress bar named label on stderr, and returns the images and the time it took.
func (e *evaluator) sample(label string, smp diffusion.Sampler, opts diffusion.SampleOptions) (*tensors.Tensor, time.Duration, error) {
	if err := e.interrupted(); err != nil {
		return nil, 0, err
	}
	o := e.o
	progress := kernel.NewProgress(0, label).WithOutput(e.stderr, kernel.ProgressAuto).WithItems(min(o.batch, o.n), "img")
	opts.N, opts.BatchSize, opts.Seed, opts.Context = o.n, o.batch, o.seed, e.ctx
	opts.OnStep = func(done, total int) { progress.Update(done) }
	start := time.Now()
	res, err := e.gen.Sample(smp, opts)
	progress.Done()
	if err != nil {
		return nil, 0, e.m.ExplainLoadError(err)
	}
	return res.Images, time.Since(start), nil
}

// standardRows samples the generated row's images with smp, labels and guidance w, and scores them,
// n real training images and n images of clipped noise. It also returns the sampling time.
func (e *evaluator) standardRows(smp diffusion.Sampler, clf *quality.Classifier, ref *quality.Gaussian, train *mnist.Dataset,
	labels []int, w float64) ([]row, time.Duration, error) {
	o := e.o
	images, took, err := e.sample("sample", smp, diffusion.SampleOptions{Labels: labels, Guidance: w})
	if err != nil {
		return nil, 0, err
	}
	generated := "generated (" + o.Sampler + ")"
	switch {
	case labels != nil:
		generated = fmt.Sprintf("generated (%s, w=%g)", o.Sampler, w)
	case e.gen.Classes > 0:
		generated = fmt.Sprintf("generated (%s, no label)", o.Sampler)
	}
	sets := []struct {
		name   string
		images func() (*tensors.Tensor, error)
	}{
		{generated, func() (*tensors.Tensor, error) { return images, nil }},
		{"real MNIST (train)", func() (*tensors.Tensor, error) {
			x, _, err := experiment.DigitImages(train, o.n, quality.ImageSize, o.seed)
			return x, err
		}},
		{"noise N(0,1) clipped", func() (*tensors.Tensor, error) { return noiseImages(o.n, o.seed), nil }},
	}
	var rows []row
	for _, set := range sets {
		if err := e.interrupted(); err != nil {
			return nil, 0, err
		}
		x, err := set.images()
		if err != nil {
			return nil, 0, err
		}
		s, err := clf.Score(x, ref)
		if err != nil {
			return nil, 0, fmt.Errorf("scoring %s: %w", set.name, err)
		}
		rows = append(rows, row{set.name, s})
	}
	fmt.Fprintf(e.log, "evaluate: sampling took %.1fs (%.2fs per image)\n", took.Seconds(), took.Seconds()/float64(o.n))
	return rows, took, nil
}

// interrupted returns an error once the context is done (Ctrl-C).
func (e *evaluator) interrupted() error {
	if err := e.ctx.Err(); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	return nil
}

// guidanceRow is one row of the guidance table (and of its JSON).
type guidanceRow struct {
	W float64 `json:"w"`
	// AccuracyPerDigit gives for each digit d the fraction of the images asked for d that the
	// classifier reads as d (null when none was asked for, with --n < 10).
	AccuracyPerDigit  []jsonFloat `json:"accuracy_per_digit"`
	Accuracy          jsonFloat   `json:"accuracy"`           // Over all images.
	ConfidentFraction jsonFloat   `json:"confident_fraction"` // Fraction with max probability >= ConfidentThreshold.
	FrechetDistance   jsonFloat   `json:"frechet_distance"`
	Seconds           float64     `json:"seconds"` // Sampling time.
}

// guidanceRows samples --n images, the digits 0-9 in turn, with smp at each --guidance-scales scale
// from the same seed, and classifies them.
func (e *evaluator) guidanceRows(smp diffusion.Sampler, clf *quality.Classifier, ref *quality.Gaussian) ([]guidanceRow, error) {
	labels := experiment.Labels(e.o.n, quality.NumClasses)
	var rows []guidanceRow
	for _, w := range e.o.scales {
		images, took, err := e.sample(fmt.Sprintf("w=%g", w), smp, diffusion.SampleOptions{Labels: labels, Guidance: w})
		if err != nil {
			return nil, err
		}
		out, err := clf.Evaluate(images)
		images.FinalizeAll()
		if err != nil {
			return nil, fmt.Errorf("classifying the images of w=%g: %w", w, err)
		}
		s, err := quality.ScoreOutputs(out, ref)
		if err != nil {
			return nil, fmt.Errorf("scoring the images of w=%g: %w", w, err)
		}
		perDigit, accuracy := digitAccuracy(labels, out.Predictions())
		r := guidanceRow{W: w, AccuracyPerDigit: make([]jsonFloat, len(perDigit)), Accuracy: jsonFloat(accuracy),
			ConfidentFraction: jsonFloat(s.Confident), FrechetDistance: jsonFloat(s.FD), Seconds: took.Seconds()}
		for d, a := range perDigit {
			r.AccuracyPerDigit[d] = jsonFloat(a)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// digitAccuracy returns, for each digit d, the fraction of the images asked for d (asked[i] is image
// i's digit) that were predicted as d (NaN when none was asked for), and the fraction of all images
// predicted as asked.
func digitAccuracy(asked, predicted []int) (perDigit [quality.NumClasses]float64, overall float64) {
	var total, right [quality.NumClasses]int
	hits := 0
	for i, d := range asked {
		total[d]++
		if predicted[i] == d {
			right[d]++
			hits++
		}
	}
	for d := range perDigit {
		perDigit[d] = math.NaN()
		if total[d] > 0 {
			perDigit[d] = float64(right[d]) / float64(total[d])
		}
	}
	return perDigit, float64(hits) / float64(len(asked))
}

// inversionRow is one row of the inversion table (and of its JSON).
type inversionRow struct {
	Steps    int       `json:"steps"`
	RMSE     jsonFloat `json:"rmse"`      // Of the reconstruction, pixels in [-1, 1].
	PSNR     jsonFloat `json:"psnr_db"`   // 20 log10(2 / RMSE).
	NoiseStd jsonFloat `json:"noise_std"` // Of the inverted noise, all values together.
	Seconds  float64   `json:"seconds"`   // Inversion and decoding.
}

// inversionRows inverts --n test images to noise and decodes it back, with each --inversion-steps
// count, and measures the round trip. A class-conditional model gets each image's label (guidance 1).
func (e *evaluator) inversionRows(test *mnist.Dataset) ([]inversionRow, error) {
	o := e.o
	x, labels, err := experiment.DigitImages(test, o.n, quality.ImageSize, o.seed)
	if err != nil {
		return nil, err
	}
	w := 1.0
	if e.gen.Classes == 0 {
		labels, w = nil, 0
	}
	want := tensors.MustCopyFlatData[float32](x)
	spacing := diffusion.Spacing(o.Spacing)
	var rows []inversionRow
	for _, steps := range o.invSteps {
		noise, tookInvert, err := e.sample(fmt.Sprintf("invert %d", steps), diffusion.DDIMInversion{Steps: steps, Spacing: spacing},
			diffusion.SampleOptions{Labels: labels, Guidance: w, Init: x})
		if err != nil {
			return nil, err
		}
		back, tookDecode, err := e.sample(fmt.Sprintf("decode %d", steps), diffusion.DDIM{Steps: steps, Spacing: spacing},
			diffusion.SampleOptions{Labels: labels, Guidance: w, Init: noise})
		if err != nil {
			return nil, err
		}
		rmse, psnr := reconstructionError(want, tensors.MustCopyFlatData[float32](back))
		rows = append(rows, inversionRow{Steps: steps, RMSE: jsonFloat(rmse), PSNR: jsonFloat(psnr),
			NoiseStd: jsonFloat(stdDev(tensors.MustCopyFlatData[float32](noise))), Seconds: (tookInvert + tookDecode).Seconds()})
		noise.FinalizeAll()
		back.FinalizeAll()
	}
	return rows, nil
}

// reconstructionError returns the root mean square error of got against want, pixels in [-1, 1], and
// the PSNR in dB for that range of 2: 20 log10(2 / RMSE) (+Inf for a perfect reconstruction).
func reconstructionError(want, got []float32) (rmse, psnr float64) {
	var se float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		se += d * d
	}
	rmse = math.Sqrt(se / float64(len(want)))
	return rmse, 20 * math.Log10(2/rmse)
}

// stdDev returns the standard deviation of the values (about their mean).
func stdDev(values []float32) float64 {
	var sum, sum2 float64
	for _, v := range values {
		sum += float64(v)
	}
	mean := sum / float64(len(values))
	for _, v := range values {
		d := float64(v) - mean
		sum2 += d * d
	}
	return math.Sqrt(sum2 / float64(len(values)))
}

// report is what --json prints: one object. Sampler, Classifier and ConfidentThreshold are left out
// with --inversion alone; Scores unless the standard table is asked for.
type report struct {
	Checkpoint string       `json:"checkpoint"` // the checkpoint file read
	Model      modelInfo    `json:"model"`
	Sampler    *samplerInfo `json:"sampler,omitempty"` // of the standard table and the guidance table
	// Conditioning is the standard table's, for a class-conditional model.
	Conditioning    *conditioningInfo `json:"conditioning,omitempty"`
	N               int               `json:"n"` // images per row
	Seed            int64             `json:"seed"`
	Backend         string            `json:"backend"`
	SamplingSeconds float64           `json:"sampling_seconds,omitempty"` // of the standard table's generated row
	Classifier      *classifierInfo   `json:"classifier,omitempty"`
	// ConfidentThreshold is the probability above which an image counts as confident.
	ConfidentThreshold float64        `json:"confident_threshold,omitempty"`
	Scores             *scoresJSON    `json:"scores,omitempty"`
	GuidanceTable      []guidanceRow  `json:"guidance_table,omitempty"`
	Inversion          []inversionRow `json:"inversion,omitempty"`
}

// conditioningInfo is what a class-conditional model draws in the standard table.
type conditioningInfo struct {
	Digit    string  `json:"digit"` // a digit 0-9, all or none (as --digit)
	Guidance float64 `json:"guidance"`
}

type modelInfo struct {
	Preset        string `json:"preset"`
	Step          int64  `json:"step"`
	Schedule      string `json:"schedule"`
	T             int    `json:"T"`
	Prediction    string `json:"prediction"`     // "" is epsilon (older checkpoints)
	MovingAverage bool   `json:"moving_average"` // sampled from the weights' moving average
	Summary       string `json:"summary"`
}

type samplerInfo struct {
	Name        string  `json:"name"` // --sampler
	Description string  `json:"description"`
	Steps       int     `json:"steps"` // network calls per image (T for ddpm)
	Eta         float64 `json:"eta"`
	Spacing     string  `json:"spacing"`
	Variance    string  `json:"variance"`
	Clip        bool    `json:"clip"`
}

type classifierInfo struct {
	TestAccuracy    jsonFloat `json:"test_accuracy"` // null when not measured
	TestExamples    int       `json:"test_examples"`
	ReferenceImages int       `json:"reference_images"` // MNIST test images of the Fréchet reference
}

type scoresJSON struct {
	Generated rowScores `json:"generated"`
	Real      rowScores `json:"real"`
	Noise     rowScores `json:"noise"`
}

// rowScores is one row of the table.
type rowScores struct {
	Images            string    `json:"images"` // the row's name in the table
	N                 int       `json:"n"`
	Confidence        jsonFloat `json:"confidence"`
	ConfidentFraction jsonFloat `json:"confident_fraction"` // the table's p>=0.9, as a fraction
	Digits            int       `json:"digits"`             // digits predicted confidently at least once, of 10
	ClassifierScore   jsonFloat `json:"classifier_score"`
	FrechetDistance   jsonFloat `json:"frechet_distance"`
	DigitCounts       []int     `json:"digit_counts"` // predicted digits 0..9
}

// rowJSON converts a row of the standard table for the JSON report.
func rowJSON(r row) rowScores {
	s := r.scores
	return rowScores{Images: r.name, N: s.N, Confidence: jsonFloat(s.Confidence), ConfidentFraction: jsonFloat(s.Confident),
		Digits: s.Classes, ClassifierScore: jsonFloat(s.ClassifierScore), FrechetDistance: jsonFloat(s.FD), DigitCounts: s.Histogram[:]}
}

// jsonFloat is a float64 that JSON encodes as null when it is NaN or infinite (which JSON cannot hold).
type jsonFloat float64

// MarshalJSON implements json.Marshaler.
func (f jsonFloat) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(f))
}

// noiseImages returns n images of standard Gaussian noise clipped to [-1, 1]: what the sampler
// starts from, the worst case.
func noiseImages(n int, seed int64) *tensors.Tensor {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6e6f697365)) // "noise"
	data := make([]float32, n*quality.ImageSize*quality.ImageSize)
	for i := range data {
		data[i] = float32(min(max(rng.NormFloat64(), -1), 1))
	}
	return tensors.FromFlatDataAndDimensions(data, n, quality.ImageSize, quality.ImageSize, 1)
}

// printTable writes the scores, one row per image set, and a legend.
func printTable(w io.Writer, rows []row) error {
	width := len("images")
	for _, r := range rows {
		width = max(width, len(r.name))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\tn\tconfidence\tp>=%.1f\tdigits\tclf score\tFréchet\tpredicted digits 0..9\t\n", width, "images", quality.ConfidentThreshold)
	for _, r := range rows {
		s := r.scores
		hist := make([]string, len(s.Histogram))
		for c, k := range s.Histogram {
			hist[c] = fmt.Sprint(k)
		}
		fmt.Fprintf(tw, "%-*s\t%d\t%.3f\t%.1f%%\t%d/10\t%.2f\t%.2f\t%s\t\n", width, r.name, s.N, s.Confidence, 100*s.Confident,
			s.Classes, s.ClassifierScore, s.FD, strings.Join(hist, " "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "confidence: mean max class probability; p>=%.1f: fraction of confident images; digits: digits\n"+
		"predicted confidently at least once; clf score: exp(E KL(p(y|x)||p(y))), 1..10; Fréchet: distance of\n"+
		"feature Gaussians to the MNIST test set (lower is better; it grows as n shrinks, compare at equal n).\n",
		quality.ConfidentThreshold)
	return err
}

// printGuidanceTable writes the guidance table, one row per guidance scale, and a legend.
func printGuidanceTable(w io.Writer, rows []guidanceRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "w\t")
	for d := range quality.NumClasses {
		fmt.Fprintf(tw, "%d\t", d)
	}
	fmt.Fprintf(tw, "mean\tp>=%.1f\tFréchet\tseconds\t\n", quality.ConfidentThreshold)
	for _, r := range rows {
		fmt.Fprintf(tw, "%g\t", r.W)
		for _, a := range r.AccuracyPerDigit {
			fmt.Fprintf(tw, "%s\t", formatFloat(float64(a), "%.2f"))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t\n", formatFloat(float64(r.Accuracy), "%.3f"), formatFloat(100*float64(r.ConfidentFraction), "%.1f%%"),
			formatFloat(float64(r.FrechetDistance), "%.2f"), r.Seconds)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "w: guidance scale (0 ignores the digit, 1 plain conditional); 0..9: fraction of the images asked for\n"+
		"that digit that the classifier reads as it (-: none asked for); mean: the same over all images; p>=%.1f:\n"+
		"fraction of confident images; Fréchet: distance of feature Gaussians to the MNIST test set (lower is better).\n",
		quality.ConfidentThreshold)
	return err
}

// printInversionTable writes the inversion round trip table, one row per step count, and a legend.
func printInversionTable(w io.Writer, rows []inversionRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "steps\tRMSE\tPSNR dB\tnoise std\tseconds\t\n")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%.1f\t\n", r.Steps, formatFloat(float64(r.RMSE), "%.4f"), formatFloat(float64(r.PSNR), "%.2f"),
			formatFloat(float64(r.NoiseStd), "%.3f"), r.Seconds)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprint(w, "DDIM inversion then deterministic DDIM (eta 0, no clipping) with as many steps. RMSE: of the\n"+
		"reconstructed test images, pixels in [-1, 1]; PSNR: 20 log10(2/RMSE); noise std: of the inverted noise\n"+
		"(about 1 when it looks like the sampler's starting noise); seconds: inversion and decoding.\n")
	return err
}

// formatFloat formats v with format, or as "-" when it is NaN.
func formatFloat(v float64, format string) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf(format, v)
}
