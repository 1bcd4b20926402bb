// Package quality measures how much generated images look like MNIST digits, with a small MNIST
// classifier trained here with GoMLX (2 epochs, over 99% test accuracy: TestClassifierFullTraining and
// docs/experiments.md) and cached on disk:
//
//   - confidence: the mean maximum class probability, and the fraction of images classified with
//     probability >= 0.9;
//   - the histogram of predicted digits, the number of digits produced confidently, and the
//     "classifier score" (the Inception score computed with the MNIST classifier);
//   - the Fréchet distance (as FID) between Gaussian fits of the classifier's 128-d penultimate
//     features of the images and of the MNIST test set.
//
// Scores depend on the number of images (the Fréchet distance especially is biased upwards for small
// sets), so compare sets of the same size, and against the reference rows of real MNIST images and of
// noise at that size (see scripts/evaluate).
//
// Images are [N, 32, 32, 1] float32 in [-1, 1], as the preprocessed MNIST of package mnist and as the
// diffusion samplers produce them; values outside [-1, 1] are clipped before classification.
package quality

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train/optimizer"

	"github.com/godiffusion/godiffusion/diffusion"
	"github.com/godiffusion/godiffusion/diffusion/mnist"
	"github.com/godiffusion/godiffusion/kernel"
	"github.com/godiffusion/godiffusion/layers"
)

const (
	// ImageSize is the height and width of the images the classifier takes.
	ImageSize = 32
	// FeatureDim is the size of the feature vectors (the penultimate layer) used for the Fréchet distance.
	FeatureDim = 128

	classifierKind    = "godiffusion/mnist-classifier"
	classifierVersion = 1
	// Architecture describes the classifier; a cache with another architecture is re-trained.
	Architecture = "conv5x5s2x32-relu-conv3x3x64-maxpool2-relu-dense128-relu-dense10"

	// evalBatchSize is the batch size of Classifier.Evaluate.
	evalBatchSize = 250
	// scopeName is the scope of the classifier's variables.
	scopeName = "classifier"
)

// ClassifierMeta is stored with the classifier's weights.
type ClassifierMeta struct {
	Kind         string  `json:"kind"`
	Version      int     `json:"version"`
	Architecture string  `json:"architecture"`
	Steps        int     `json:"steps"`
	BatchSize    int     `json:"batch_size"`
	LearningRate float64 `json:"learning_rate"`
	Seed         int64   `json:"seed"`
	// TrainExamples is the number of training images used.
	TrainExamples int `json:"train_examples"`
	// TestAccuracy is the accuracy on the first TestExamples images of the MNIST test set
	// (-1 when not measured).
	TestAccuracy float64 `json:"test_accuracy"`
	TestExamples int     `json:"test_examples"`
	// TrainSeconds is the wall time of the training steps.
	TrainSeconds float64 `json:"train_seconds"`
}

// TrainOptions configure TrainClassifier. Zero values take the defaults.
type TrainOptions struct {
	// Epochs over the training set (default 2). Ignored when Steps > 0.
	Epochs int
	// Steps, when > 0, is the exact number of training steps (for quick tests).
	Steps int
	// BatchSize (default 128).
	BatchSize int
	// LearningRate is Adam's peak learning rate (default 2e-3); it decays along a half cosine to
	// 5% of it at the last step.
	LearningRate float64
	// Seed fixes the initialisation and the data order.
	Seed int64
	// TrainExamples, when > 0, uses only the first TrainExamples training images.
	TrainExamples int
	// TestExamples is the number of test images the accuracy is measured on: 0 means all 10000,
	// a negative value skips the measurement.
	TestExamples int
	// Progress, when not nil, receives a progress bar and messages.
	Progress io.Writer
}

// Defaults of TrainOptions.
const (
	DefaultEpochs       = 2
	DefaultBatchSize    = 128
	DefaultLearningRate = 2e-3
)

func (o *TrainOptions) withDefaults() TrainOptions {
	r := *o
	if r.Epochs <= 0 {
		r.Epochs = DefaultEpochs
	}
	if r.BatchSize <= 0 {
		r.BatchSize = DefaultBatchSize
	}
	if r.LearningRate <= 0 {
		r.LearningRate = DefaultLearningRate
	}
	return r
}

// Classifier is a trained MNIST classifier.
type Classifier struct {
	Meta    ClassifierMeta
	backend compute.Backend
	store   *model.Store
	exec    *model.Exec
}

// The first layer is a 5x5 convolution with stride 2 ("SAME" padding: 32x32 -> 16x16). Its input
// patches are gathered on the host (patchify), so that in the graph it is a 1x1 convolution: a
// convolution of a 1-channel image through im2col in the graph is dominated by data movement on the
// pure Go backend, and the input needs no gradient.
const (
	patchSize   = 5
	patchStride = 2
	patchLow    = 1 // "SAME" padding for 32 -> 16 with a 5x5 window, stride 2: 1 before, 2 after.
	gridSize    = ImageSize / patchStride
	patchLen    = patchSize * patchSize
)

// patchify writes, for each of the n images in src ([n, 32, 32] flattened), its 16x16 grid of 5x5
// patches into dst ([n, 16, 16, 25] flattened). Values are clipped to [-1, 1] and mapped to [0, 1]
// (background 0, as MNIST's pixels / 255, which trains faster than mostly -1 inputs); outside the
// image they are 0, the background.
func patchify(dst, src []float32, n int) {
	per := ImageSize * ImageSize
	for img := range n {
		in := src[img*per : (img+1)*per]
		out := dst[img*gridSize*gridSize*patchLen : (img+1)*gridSize*gridSize*patchLen]
		k := 0
		for gi := range gridSize {
			for gj := range gridSize {
				for di := range patchSize {
					r := gi*patchStride - patchLow + di
					for dj := range patchSize {
						c := gj*patchStride - patchLow + dj
						v := float32(0)
						if r >= 0 && r < ImageSize && c >= 0 && c < ImageSize {
							v = (min(max(in[r*ImageSize+c], -1), 1) + 1) * 0.5
						}
						out[k] = v
						k++
					}
				}
			}
		}
	}
}

// network is the classifier: it returns the logits [batch, 10] and the features [batch, FeatureDim]
// for the patches [batch, 16, 16, 25] of the images (see patchify):
//
//	conv 5x5/2 (32) -> ReLU -> conv 3x3 (64) -> max pool 2 -> ReLU -> dense 128 (the features) -> ReLU
//	-> dense 10.
//
// In training, dropout (rate 0.25) is applied to the flattened convolution features.
func network(scope *model.Scope, patches *Node, training bool) (logits, features *Node) {
	relu := func(h *Node) *Node { return MaxScalar(h, 0) }
	h := relu(layers.Conv(scope.In("conv1"), patches).Channels(32).KernelSize(1).Done()) // 16x16x32
	h = layers.Conv(scope.In("conv2"), h).Channels(64).KernelSize(3).Done()              // 16x16x64
	h = relu(maxPool2(h))                                                                // 8x8x64 (max pool and ReLU commute)
	dims := h.Shape().Dimensions
	h = Reshape(h, dims[0], dims[1]*dims[2]*dims[3])
	if training {
		const keep = 0.75
		mask := LessThan(scope.RandomUniform(h.Graph(), h.Shape()), Scalar(h.Graph(), h.DType(), keep))
		h = Where(mask, MulScalar(h, 1/keep), ZerosLike(h))
	}
	features = relu(layers.Dense(scope.In("dense1"), h, FeatureDim, true))
	logits = layers.Dense(scope.In("dense2"), features, NumClasses, true)
	return logits, features
}

// expectedVariables are the classifier's trainable variables and their shapes.
var expectedVariables = map[string][]int{
	"conv1/conv/weights":   {1, 1, patchLen, 32},
	"conv1/conv/biases":    {32},
	"conv2/conv/weights":   {3, 3, 32, 64},
	"conv2/conv/biases":    {64},
	"dense1/dense/weights": {(gridSize / 2) * (gridSize / 2) * 64, FeatureDim},
	"dense1/dense/biases":  {FeatureDim},
	"dense2/dense/weights": {FeatureDim, NumClasses},
	"dense2/dense/biases":  {NumClasses},
}

// maxShift is the largest random translation (in pixels, along each axis) of the training images.
const maxShift = 2

// shiftImage writes into dst the 32x32 image src translated by (dy, dx) pixels, filling with the
// background (-1).
func shiftImage(dst, src []float32, dy, dx int) {
	for r := range ImageSize {
		for c := range ImageSize {
			sr, sc := r-dy, c-dx
			v := float32(-1)
			if sr >= 0 && sr < ImageSize && sc >= 0 && sc < ImageSize {
				v = src[sr*ImageSize+sc]
			}
			dst[r*ImageSize+c] = v
		}
	}
}

// maxPool2 is a 2x2 max pooling with stride 2 of x [batch, height, width, channels], by reshaping.
func maxPool2(x *Node) *Node {
	d := x.Shape().Dimensions
	return ReduceMax(Reshape(x, d[0], d[1]/2, 2, d[2]/2, 2, d[3]), 2, 4)
}

// TrainClassifier trains the classifier on the MNIST training set found in dataDir ("" for the default,
// see mnist.ResolveDir) and measures its accuracy on the test set. With the defaults (2 epochs, batch
// 128, Adam with a cosine-decayed learning rate, random shifts of up to 2 pixels, dropout) it reaches
// over 99% test accuracy in 936 steps (docs/experiments.md).
func TrainClassifier(b compute.Backend, dataDir string, opts TrainOptions) (*Classifier, error) {
	o := opts.withDefaults()
	dir, err := mnist.ResolveDir(dataDir)
	if err != nil {
		return nil, err
	}
	data, err := mnist.Load(dir, mnist.Train)
	if err != nil {
		return nil, err
	}
	if o.TrainExamples > 0 {
		data = data.Subset(o.TrainExamples)
	}
	batcher, err := mnist.NewBatcher(data, mnist.BatcherConfig{BatchSize: o.BatchSize, Seed: uint64(o.Seed), Size: ImageSize})
	if err != nil {
		return nil, err
	}
	steps := o.Steps
	if steps <= 0 {
		steps = o.Epochs * batcher.StepsPerEpoch()
	}

	store := model.NewStore()
	store.SetParam(model.ParamInitialSeed, o.Seed)
	if err := store.SetRNGStateFromSeed(o.Seed); err != nil {
		return nil, err
	}
	lrVar := optimizer.LearningRateVar(store.RootScope(), dtypes.Float32, o.LearningRate)
	opt := optimizer.Adam().LearningRate(o.LearningRate).Done()
	exec, err := model.NewExec(b, store, func(scope *model.Scope, x, labels *Node) *Node {
		g := x.Graph()
		store.SetTraining(g, true)
		logits, _ := network(scope.In(scopeName), x, true)
		logProbs := LogSoftmax(logits, -1)
		oneHot := OneHot(labels, NumClasses, logProbs.DType())
		loss := Neg(ReduceAllMean(ReduceSum(Mul(oneHot, logProbs), -1)))
		opt.UpdateGraph(scope, g, loss)
		return loss
	})
	if err != nil {
		return nil, err
	}
	progress := (*kernel.Progress)(nil)
	if o.Progress != nil {
		progress = kernel.NewProgress(steps, "classifier").WithOutput(o.Progress, kernel.ProgressAuto).WithItems(o.BatchSize, "img")
	}
	labels := make([]int32, o.BatchSize)
	patches := make([]float32, o.BatchSize*gridSize*gridSize*patchLen)
	shifted := make([]float32, o.BatchSize*ImageSize*ImageSize)
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0x5368696674)) // augmentation: random shifts
	start := time.Now()
	for step := range steps {
		// Half-cosine decay from the peak learning rate to 5% of it.
		frac := float64(step) / float64(max(steps-1, 1))
		lr := o.LearningRate * (0.05 + 0.95*0.5*(1+math.Cos(math.Pi*frac)))
		if err := lrVar.SetValue(tensors.FromValue(float32(lr))); err != nil {
			return nil, err
		}
		batch := batcher.Next()
		for i, l := range batch.Labels {
			labels[i] = int32(l)
		}
		for i := range o.BatchSize {
			dy, dx := rng.IntN(2*maxShift+1)-maxShift, rng.IntN(2*maxShift+1)-maxShift
			shiftImage(shifted[i*ImageSize*ImageSize:(i+1)*ImageSize*ImageSize], batch.Images.Image(i), dy, dx)
		}
		patchify(patches, shifted, o.BatchSize)
		x := tensors.FromFlatDataAndDimensions(patches, o.BatchSize, gridSize, gridSize, patchLen)
		outs, err := exec.Exec(x, tensors.FromFlatDataAndDimensions(labels, o.BatchSize))
		x.FinalizeAll()
		if err != nil {
			progress.Done()
			return nil, fmt.Errorf("classifier training step %d: %w", step, err)
		}
		loss := float64(outs[0].Value().(float32))
		outs[0].FinalizeAll()
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			progress.Done()
			return nil, fmt.Errorf("classifier training diverged: loss %v at step %d", loss, step)
		}
		progress.Update(step+1, kernel.F("loss", loss))
	}
	progress.Done()
	elapsed := time.Since(start)

	// Keep only the weights: a fresh store without the optimizer state.
	c, err := newClassifier(b, weightsOnly(store))
	if err != nil {
		return nil, err
	}
	exec.Finalize()
	c.Meta = ClassifierMeta{Kind: classifierKind, Version: classifierVersion, Architecture: Architecture,
		Steps: steps, BatchSize: o.BatchSize, LearningRate: o.LearningRate, Seed: o.Seed,
		TrainExamples: data.Len(), TestAccuracy: -1, TrainSeconds: elapsed.Seconds()}
	if o.TestExamples >= 0 {
		acc, n, err := c.TestAccuracy(dir, o.TestExamples)
		if err != nil {
			return nil, err
		}
		c.Meta.TestAccuracy, c.Meta.TestExamples = acc, n
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "classifier: %d steps in %.1fs, test accuracy %.2f%% on %d images\n",
				steps, elapsed.Seconds(), 100*acc, n)
		}
	}
	return c, nil
}

// weightsOnly returns a store holding copies of the classifier's trainable variables.
func weightsOnly(store *model.Store) *model.Store {
	out := model.NewStore()
	prefix := "/" + scopeName + "/"
	for v := range store.IterVariables() {
		if v.Trainable && len(v.Path()) > len(prefix) && v.Path()[:len(prefix)] == prefix {
			_, _ = v.CloneToStore(out)
		}
	}
	return out
}

// newClassifier checks that store holds exactly the classifier's weights and compiles the evaluation.
func newClassifier(b compute.Backend, store *model.Store) (*Classifier, error) {
	found := 0
	for v := range store.IterVariables() {
		name := v.Path()
		prefix := "/" + scopeName + "/"
		if len(name) <= len(prefix) || name[:len(prefix)] != prefix {
			return nil, fmt.Errorf("unexpected variable %s", name)
		}
		want, ok := expectedVariables[name[len(prefix):]]
		if !ok {
			return nil, fmt.Errorf("unexpected variable %s", name)
		}
		if s := v.Shape(); s.DType != dtypes.Float32 || !slices.Equal(s.Dimensions, want) {
			return nil, fmt.Errorf("variable %s is %s, want float32%v", name, s, want)
		}
		if !v.HasValue() {
			return nil, fmt.Errorf("variable %s has no value", name)
		}
		found++
	}
	if found != len(expectedVariables) {
		return nil, fmt.Errorf("%d of the %d classifier variables present", found, len(expectedVariables))
	}
	exec, err := model.NewExec(b, store, func(scope *model.Scope, x *Node) (*Node, *Node) {
		logits, features := network(scope.In(scopeName), x, false)
		return Softmax(logits, -1), features
	})
	if err != nil {
		return nil, err
	}
	return &Classifier{backend: b, store: store, exec: exec.WithName("classifier")}, nil
}

// Evaluate classifies images, a float32 tensor [N, 32, 32, 1] with values in [-1, 1], in batches, and
// returns the class probabilities and features.
func (c *Classifier) Evaluate(images *tensors.Tensor) (*Outputs, error) {
	s := images.Shape()
	if s.DType != dtypes.Float32 || s.Rank() != 4 || s.Dimensions[1] != ImageSize || s.Dimensions[2] != ImageSize || s.Dimensions[3] != 1 {
		return nil, fmt.Errorf("quality: Evaluate: images must be float32 [N, %d, %d, 1], got %s", ImageSize, ImageSize, s)
	}
	data, err := tensors.CopyFlatData[float32](images)
	if err != nil {
		return nil, err
	}
	return c.EvaluateData(data, s.Dimensions[0])
}

// EvaluateData is Evaluate for n images given as flat NHWC float32 data (len n*32*32).
func (c *Classifier) EvaluateData(data []float32, n int) (*Outputs, error) {
	per := ImageSize * ImageSize
	if n < 1 || len(data) != n*per {
		return nil, fmt.Errorf("quality: Evaluate: %d values for %d images of %dx%d", len(data), n, ImageSize, ImageSize)
	}
	// A fixed batch size (the last batch padded with background) compiles a single graph.
	bs := min(evalBatchSize, n)
	out := &Outputs{N: n, Probs: make([]float32, 0, n*NumClasses), Features: make([]float32, 0, n*FeatureDim)}
	buf := make([]float32, bs*per)
	patches := make([]float32, bs*gridSize*gridSize*patchLen)
	for start := 0; start < n; start += bs {
		k := min(bs, n-start)
		copy(buf, data[start*per:(start+k)*per])
		for i := k * per; i < len(buf); i++ {
			buf[i] = -1
		}
		patchify(patches, buf, bs)
		x := tensors.FromFlatDataAndDimensions(patches, bs, gridSize, gridSize, patchLen)
		outs, err := c.exec.Exec(x)
		x.FinalizeAll()
		if err != nil {
			return nil, fmt.Errorf("quality: classifier: %w", err)
		}
		probs, err1 := tensors.CopyFlatData[float32](outs[0])
		feats, err2 := tensors.CopyFlatData[float32](outs[1])
		outs[0].FinalizeAll()
		outs[1].FinalizeAll()
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		out.Probs = append(out.Probs, probs[:k*NumClasses]...)
		out.Features = append(out.Features, feats[:k*FeatureDim]...)
	}
	return out, nil
}

// Score evaluates images ([N, 32, 32, 1] float32) and computes their scores; ref (may be nil) is the
// reference Gaussian of the Fréchet distance, see ReferenceGaussian.
func (c *Classifier) Score(images *tensors.Tensor, ref *Gaussian) (*Scores, error) {
	out, err := c.Evaluate(images)
	if err != nil {
		return nil, err
	}
	return ScoreOutputs(out, ref)
}

// loadTest loads the first n images of the MNIST test set (all when n <= 0 or larger).
func loadTest(dataDir string, n int) (*mnist.Images, []uint8, error) {
	dir, err := mnist.ResolveDir(dataDir)
	if err != nil {
		return nil, nil, err
	}
	test, err := mnist.Load(dir, mnist.Test)
	if err != nil {
		return nil, nil, err
	}
	if n > 0 {
		test = test.Subset(n)
	}
	return test.Preprocess(ImageSize), test.Labels, nil
}

// TestAccuracy returns the accuracy on the first n MNIST test images (all 10000 when n <= 0), and the
// number of images used.
func (c *Classifier) TestAccuracy(dataDir string, n int) (float64, int, error) {
	images, labels, err := loadTest(dataDir, n)
	if err != nil {
		return 0, 0, err
	}
	out, err := c.EvaluateData(images.Data, images.N)
	if err != nil {
		return 0, 0, err
	}
	correct := 0
	for i, p := range out.Predictions() {
		if p == int(labels[i]) {
			correct++
		}
	}
	return float64(correct) / float64(images.N), images.N, nil
}

// ReferenceGaussian fits the Gaussian of the classifier's features over the first n images of the
// MNIST test set (n <= 0: all 10000, the standard reference of the Fréchet distance).
func (c *Classifier) ReferenceGaussian(dataDir string, n int) (*Gaussian, error) {
	images, _, err := loadTest(dataDir, n)
	if err != nil {
		return nil, err
	}
	out, err := c.EvaluateData(images.Data, images.N)
	if err != nil {
		return nil, err
	}
	return FitGaussian(out.Features, out.N, FeatureDim)
}

// Save writes the classifier's weights and metadata to path (atomically).
func (c *Classifier) Save(path string) error {
	return diffusion.SaveCheckpoint(path, c.store, c.Meta)
}

// ErrIncompatible is wrapped by LoadClassifier errors for files that hold another model.
var ErrIncompatible = errors.New("not a compatible MNIST classifier")

// LoadClassifier reads a classifier written by Classifier.Save.
func LoadClassifier(b compute.Backend, path string) (*Classifier, error) {
	var meta ClassifierMeta
	if err := diffusion.ReadCheckpointMeta(path, &meta); err != nil {
		return nil, err
	}
	if meta.Kind != classifierKind || meta.Version != classifierVersion || meta.Architecture != Architecture {
		return nil, fmt.Errorf("%s: %w (kind %q version %d architecture %q; want %q version %d architecture %q)",
			path, ErrIncompatible, meta.Kind, meta.Version, meta.Architecture, classifierKind, classifierVersion, Architecture)
	}
	store := model.NewStore()
	if err := diffusion.LoadCheckpoint(path, store, nil); err != nil {
		return nil, err
	}
	c, err := newClassifier(b, store)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, ErrIncompatible, err)
	}
	c.Meta = meta
	return c, nil
}

// CacheEnv names the environment variable that overrides the default classifier cache path.
const CacheEnv = "GODIFFUSION_CLASSIFIER_CACHE"

// DefaultCachePath is where LoadOrTrainClassifier caches the classifier: $GODIFFUSION_CLASSIFIER_CACHE
// if set, else godiffusion/mnist-classifier.ckpt in the user's cache folder (os.UserCacheDir, e.g.
// ~/.cache), else in the system's temporary folder.
func DefaultCachePath() string {
	if p := os.Getenv(CacheEnv); p != "" {
		return p
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "godiffusion", "mnist-classifier.ckpt")
}

// LoadOrTrainClassifier returns the classifier cached at cachePath ("" for DefaultCachePath), or trains
// one with the default options (about 99% test accuracy) and caches it when the file is missing,
// corrupt or holds another model. Messages and the training progress go to progress (nil: silent).
func LoadOrTrainClassifier(b compute.Backend, cachePath, dataDir string, progress io.Writer) (*Classifier, error) {
	return LoadOrTrainClassifierWith(b, cachePath, dataDir, TrainOptions{Progress: progress})
}

// LoadOrTrainClassifierWith is LoadOrTrainClassifier with given training options (used only when
// training is needed); messages go to opts.Progress.
func LoadOrTrainClassifierWith(b compute.Backend, cachePath, dataDir string, opts TrainOptions) (*Classifier, error) {
	if cachePath == "" {
		cachePath = DefaultCachePath()
	}
	say := func(format string, args ...any) {
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, format+"\n", args...)
		}
	}
	c, err := LoadClassifier(b, cachePath)
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, os.ErrNotExist):
		say("classifier: no cached classifier at %s: training one (once)", cachePath)
	case errors.Is(err, diffusion.ErrCorruptCheckpoint) || errors.Is(err, ErrIncompatible):
		say("classifier: the cached classifier is unusable, re-training it: %v", err)
	default:
		say("classifier: cannot read the cached classifier, re-training it: %v", err)
	}
	c, err = TrainClassifier(b, dataDir, opts)
	if err != nil {
		return nil, err
	}
	if err := c.Save(cachePath); err != nil {
		say("classifier: warning: could not cache the classifier: %v", err)
	} else {
		say("classifier: cached at %s", cachePath)
	}
	return c, nil
}

// NumParameters returns the number of weights of the classifier.
func (c *Classifier) NumParameters() int {
	n := 0
	for v := range c.store.IterVariables() {
		n += v.Shape().Size()
	}
	return n
}
