// Command evaluate scores a trained diffusion model: it draws --n images with DDIM or DDPM and
// measures with an MNIST classifier (package diffusion/quality) how much they look like digits:
// mean confidence, fraction classified with probability >= 0.9, digits produced, the classifier
// score, and the Fréchet distance of the classifier's features to those of the MNIST test set.
// The same scores are printed for n real MNIST training images (the best one can expect at that n)
// and for n images of Gaussian noise clipped to [-1, 1] (the worst), since the scores depend on n.
//
// The classifier is trained once (2 epochs of MNIST, a few minutes on 2 CPU cores) and cached
// (--classifier-cache, default in the user's cache folder). Nothing else is written. With --json the
// scores are printed as one JSON object instead of the table (for scripts), and the log lines go to
// stderr.
//
//	go run ./scripts/evaluate --checkpoint runs/train
//	go run ./scripts/evaluate --checkpoint runs/train --sampler ddpm --n 200
//	go run ./scripts/evaluate --checkpoint runs/train --json | jq .scores.generated.frechet_distance
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
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
	checkpoint, data, classifierCache string
	n, batch                          int
	seed                              int64
	json                              bool

	// Set by tests: training options of the classifier (when the cache must be built) and the
	// number of test images of the Fréchet reference (0: all 10000).
	classifierTrain quality.TrainOptions
	refExamples     int
}

// maxImages bounds --n: the real-image reference row draws n distinct training images.
const maxImages = 60000

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := cli.NewFlagSet("evaluate", "Samples images from a trained checkpoint and scores them with an MNIST classifier,\n"+
		"beside real MNIST images and clipped Gaussian noise at the same number of images.", stderr)
	fs.StringVar(&o.checkpoint, "checkpoint", "runs/train", "checkpoint file, or run folder (its latest checkpoint) written by scripts/train")
	o.SamplerFlags.Register(fs)
	fs.IntVar(&o.n, "n", 500, "number of images per row (generated, real, noise); scores depend on it")
	fs.IntVar(&o.batch, "batch", 64, "images per denoiser call")
	fs.Int64Var(&o.seed, "seed", 0, "seed of the sampler's noise, of the real images' choice and of the noise row")
	fs.StringVar(&o.data, "data", "", "folder with the MNIST IDX files (default: $MNIST_DIR or the GoMNIST Go module)")
	fs.StringVar(&o.classifierCache, "classifier-cache", "",
		"file caching the MNIST classifier (default: $"+quality.CacheEnv+" or "+quality.DefaultCachePath()+")")
	fs.BoolVar(&o.json, "json", false, "print the scores as one JSON object (model, sampler, n, and per row generated, real, noise: "+
		"confidence, confident fraction, digits, classifier score, Fréchet distance, digit counts) instead of the table; the log lines go to stderr")
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	return o, o.validate()
}

func (o *options) validate() error {
	var c cli.Checks
	c.Check(o.checkpoint != "", "--checkpoint must not be empty")
	o.SamplerFlags.Validate(&c)
	c.Check(o.n >= 2 && o.n <= maxImages, "--n=%d: must lie in [2, %d] (the Fréchet distance needs 2 images)", o.n, maxImages)
	c.Check(o.batch >= 1, "--batch=%d: must be >= 1", o.batch)
	return c.Err()
}

func main() { cli.Main("evaluate", parseFlags, run) }

// row is one line of the results table.
type row struct {
	name   string
	scores *quality.Scores
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
	smp, err := o.SamplerFlags.Build(m.Meta.T)
	if err != nil {
		return err
	}
	if _, err := smp.Plan(m.Schedule); err != nil {
		return err
	}
	dir, err := mnist.ResolveDir(o.data)
	if err != nil {
		return err
	}
	train, err := mnist.Load(dir, mnist.Train)
	if err != nil {
		return err
	}

	trainOpts := o.classifierTrain
	trainOpts.Progress = stderr
	clf, err := quality.LoadOrTrainClassifierWith(b, o.classifierCache, dir, trainOpts)
	if err != nil {
		return fmt.Errorf("classifier: %w", err)
	}
	ref, err := clf.ReferenceGaussian(dir, o.refExamples)
	if err != nil {
		return fmt.Errorf("classifier reference: %w", err)
	}
	accuracy := "not measured"
	if clf.Meta.TestAccuracy >= 0 {
		accuracy = fmt.Sprintf("%.2f%% on %d test images", 100*clf.Meta.TestAccuracy, clf.Meta.TestExamples)
	}
	log := stdout // The log lines; with --json stdout holds the JSON object alone.
	if o.json {
		log = stderr
	}
	fmt.Fprintf(log, "evaluate: model %s, %s, %d images per row, seed %d, backend %s\n",
		m.Meta.Summary(), smp, o.n, o.seed, b.Name())
	fmt.Fprintf(log, "evaluate: classifier accuracy %s; Fréchet distance to the features of %d MNIST test images\n",
		accuracy, ref.N)

	progress := kernel.NewProgress(0, "sample").WithOutput(stderr, kernel.ProgressAuto).WithItems(min(o.batch, o.n), "img")
	start := time.Now()
	res, err := m.Generator(b).Sample(smp, diffusion.SampleOptions{N: o.n, BatchSize: o.batch, Seed: o.seed,
		Context: ctx, OnStep: func(done, total int) { progress.Update(done) }})
	progress.Done()
	if err != nil {
		return m.ExplainLoadError(err)
	}
	sampleTime := time.Since(start)

	sets := []struct {
		name   string
		images func() *tensors.Tensor
	}{
		{"generated (" + o.Sampler + ")", func() *tensors.Tensor { return res.Images }},
		{"real MNIST (train)", func() *tensors.Tensor { return realImages(train, o.n, o.seed) }},
		{"noise N(0,1) clipped", func() *tensors.Tensor { return noiseImages(o.n, o.seed) }},
	}
	var rows []row
	for _, set := range sets {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %w", ctx.Err())
		}
		s, err := clf.Score(set.images(), ref)
		if err != nil {
			return fmt.Errorf("scoring %s: %w", set.name, err)
		}
		rows = append(rows, row{set.name, s})
	}
	fmt.Fprintf(log, "evaluate: sampling took %.1fs (%.2fs per image)\n", sampleTime.Seconds(), sampleTime.Seconds()/float64(o.n))
	if !o.json {
		return printTable(stdout, rows)
	}
	file, err := experiment.ResolveCheckpoint(o.checkpoint)
	if err != nil {
		return err
	}
	plan, _ := smp.Plan(m.Schedule)
	testAccuracy := clf.Meta.TestAccuracy
	if testAccuracy < 0 {
		testAccuracy = math.NaN() // not measured: null
	}
	r := report{
		Checkpoint: file,
		Model: modelInfo{Preset: m.Meta.Preset, Step: m.Meta.Step, Schedule: m.Meta.Schedule, T: m.Meta.T,
			Prediction: string(m.Meta.Prediction), MovingAverage: m.EMA, Summary: m.Meta.Summary()},
		Sampler: samplerInfo{Name: o.Sampler, Description: fmt.Sprint(smp), Steps: len(plan), Eta: o.Eta, Spacing: o.Spacing,
			Variance: o.Variance, Clip: o.Clip},
		N: o.n, Seed: o.seed, Backend: b.Name(), SamplingSeconds: sampleTime.Seconds(),
		Classifier:         classifierInfo{TestAccuracy: jsonFloat(testAccuracy), TestExamples: clf.Meta.TestExamples, ReferenceImages: ref.N},
		ConfidentThreshold: quality.ConfidentThreshold,
		Scores:             scoresJSON{Generated: rowJSON(rows[0]), Real: rowJSON(rows[1]), Noise: rowJSON(rows[2])},
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// report is what --json prints: one object.
type report struct {
	Checkpoint      string         `json:"checkpoint"` // the checkpoint file read
	Model           modelInfo      `json:"model"`
	Sampler         samplerInfo    `json:"sampler"`
	N               int            `json:"n"` // images per row
	Seed            int64          `json:"seed"`
	Backend         string         `json:"backend"`
	SamplingSeconds float64        `json:"sampling_seconds"`
	Classifier      classifierInfo `json:"classifier"`
	// ConfidentThreshold is the probability above which an image counts as confident.
	ConfidentThreshold float64    `json:"confident_threshold"`
	Scores             scoresJSON `json:"scores"`
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

func rowJSON(r row) rowScores {
	s := r.scores
	return rowScores{Images: r.name, N: s.N, Confidence: jsonFloat(s.Confidence), ConfidentFraction: jsonFloat(s.Confident),
		Digits: s.Classes, ClassifierScore: jsonFloat(s.ClassifierScore), FrechetDistance: jsonFloat(s.FD), DigitCounts: s.Histogram[:]}
}

// jsonFloat is a float64 that JSON encodes as null when it is NaN or infinite (which JSON cannot hold).
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(f))
}

// realImages returns n distinct training images chosen by seed, preprocessed like the model's data.
func realImages(d *mnist.Dataset, n int, seed int64) *tensors.Tensor {
	idx := mnist.Permutation(uint64(seed), 0, d.Len())[:n]
	im := d.PreprocessIndices(idx, quality.ImageSize)
	return tensors.FromFlatDataAndDimensions(im.Data, n, im.Size, im.Size, 1)
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
