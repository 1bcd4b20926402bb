package mnist

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
)

// Remainder says what a Batcher does with the last, incomplete batch of an
// epoch.
type Remainder int

const (
	// DropRemainder (the default) yields only full batches: 937 per epoch for
	// the 60000 training images at batch size 64, the last 32 images of each
	// epoch's permutation being skipped (a different 32 every epoch). Every
	// batch then has the same shape, so a compiled graph is built only once.
	DropRemainder Remainder = iota
	// KeepRemainder also yields the last, smaller batch: 938 per epoch at
	// batch size 64, like the tutorial's tf.data pipeline (batch without
	// drop_remainder).
	KeepRemainder
)

// Position is where a Batcher is: the next batch it yields is batch Step of
// epoch Epoch. It is plain data, so it can be saved with a checkpoint (e.g.
// as JSON) and given back to BatcherConfig.Start or Batcher.Seek to resume.
type Position struct {
	// Epoch counts passes over the data set, from 0.
	Epoch int `json:"epoch"`
	// Step is the batch index within the epoch, from 0 to StepsPerEpoch-1.
	Step int `json:"step"`
}

// BatcherConfig configures NewBatcher. Only BatchSize is required.
type BatcherConfig struct {
	// BatchSize is the number of examples per batch (the tutorial uses 64).
	BatchSize int
	// Seed selects the shuffling; epoch e uses Permutation(Seed, e, N).
	Seed uint64
	// Remainder says whether the last incomplete batch of an epoch is
	// dropped (the default) or yielded.
	Remainder Remainder
	// Size is the height and width of the yielded images; 0 means DefaultSize.
	Size int
	// Lazy preprocesses each batch when it is yielded instead of the whole
	// data set once in NewBatcher (245 MB for the training set at size 32).
	// The values are identical either way.
	Lazy bool
	// NoShuffle yields the examples in data set order every epoch (for evaluation).
	NoShuffle bool
	// Start is the position of the first batch (the zero value: epoch 0, step 0).
	Start Position
}

// Batch is one batch of examples, as yielded by Batcher.Next.
type Batch struct {
	// Images holds the preprocessed images, float32 NHWC [len(Labels), Size, Size, 1].
	Images *Images
	// Labels holds the digits of the examples.
	Labels []uint8
	// Indices holds the examples' indices in the Dataset.
	Indices []int
	// Position is the position this batch was yielded at.
	Position Position
}

// Batcher yields batches of preprocessed examples in an order that depends
// only on the data set size, the seed, the batch size and the remainder
// policy: epoch e visits the examples in the order Permutation(seed, e, N),
// cut into consecutive batches. It is not safe for concurrent use.
type Batcher struct {
	d     *Dataset
	cfg   BatcherConfig
	steps int
	all   *Images // preprocessed data set; nil when cfg.Lazy
	pos   Position
	perm  []int // permutation of permEpoch
	// permEpoch is the epoch perm belongs to; -1 when none.
	permEpoch int
}

// NewBatcher returns a Batcher over d, positioned at cfg.Start. Unless
// cfg.Lazy is set it preprocesses the whole data set first.
func NewBatcher(d *Dataset, cfg BatcherConfig) (*Batcher, error) {
	if d == nil || d.Len() == 0 {
		return nil, fmt.Errorf("mnist: NewBatcher: empty data set")
	}
	if len(d.Labels) != d.Len() {
		return nil, fmt.Errorf("mnist: NewBatcher: %w: %d images, %d labels", ErrCountMismatch, d.Len(), len(d.Labels))
	}
	if cfg.BatchSize <= 0 {
		return nil, fmt.Errorf("mnist: NewBatcher: batch size must be positive, got %d", cfg.BatchSize)
	}
	if cfg.Remainder != DropRemainder && cfg.Remainder != KeepRemainder {
		return nil, fmt.Errorf("mnist: NewBatcher: unknown Remainder %d", cfg.Remainder)
	}
	cfg.Size = sizeOrDefault(cfg.Size)
	b := &Batcher{d: d, cfg: cfg, steps: StepsPerEpoch(d.Len(), cfg.BatchSize, cfg.Remainder), permEpoch: -1}
	if b.steps == 0 {
		return nil, fmt.Errorf("mnist: NewBatcher: batch size %d is larger than the %d examples and the remainder is dropped, so an epoch has no batch; "+
			"use a smaller batch size or KeepRemainder", cfg.BatchSize, d.Len())
	}
	if err := b.Seek(cfg.Start); err != nil {
		return nil, err
	}
	if !cfg.Lazy {
		b.all = d.Preprocess(cfg.Size)
	}
	return b, nil
}

// StepsPerEpoch returns the number of batches in an epoch of n examples:
// n/batchSize with DropRemainder, rounded up with KeepRemainder. For MNIST
// training at batch size 64: 937 or 938.
func StepsPerEpoch(n, batchSize int, r Remainder) int {
	if r == KeepRemainder {
		return (n + batchSize - 1) / batchSize
	}
	return n / batchSize
}

// StepsPerEpoch returns the number of batches the Batcher yields per epoch.
func (b *Batcher) StepsPerEpoch() int { return b.steps }

// Config returns the configuration (with Size defaulted) the Batcher was
// created with.
func (b *Batcher) Config() BatcherConfig { return b.cfg }

// Position returns the position of the batch Next will yield.
func (b *Batcher) Position() Position { return b.pos }

// Seek moves the Batcher so that Next yields batch p.Step of epoch p.Epoch.
func (b *Batcher) Seek(p Position) error {
	if p.Epoch < 0 || p.Step < 0 || p.Step >= b.steps {
		return fmt.Errorf("mnist: Batcher.Seek: position %+v out of range (epoch >= 0, 0 <= step < %d)", p, b.steps)
	}
	b.pos = p
	return nil
}

// Next yields the batch at Position and advances to the following one,
// moving on to the next epoch (and its permutation) after the last step.
// It never runs out; the caller decides when to stop. Each Batch has its own
// freshly allocated slices.
func (b *Batcher) Next() *Batch {
	if b.permEpoch != b.pos.Epoch {
		if b.cfg.NoShuffle {
			if b.perm == nil {
				b.perm = identity(b.d.Len())
			}
		} else {
			b.perm = Permutation(b.cfg.Seed, b.pos.Epoch, b.d.Len())
		}
		b.permEpoch = b.pos.Epoch
	}
	bs := b.cfg.BatchSize
	lo := b.pos.Step * bs
	idx := append([]int(nil), b.perm[lo:min(lo+bs, len(b.perm))]...)
	batch := &Batch{Indices: idx, Labels: make([]uint8, len(idx)), Position: b.pos}
	for k, i := range idx {
		batch.Labels[k] = b.d.Labels[i]
	}
	if b.all == nil {
		batch.Images = b.d.PreprocessIndices(idx, b.cfg.Size)
	} else {
		px := b.cfg.Size * b.cfg.Size
		batch.Images = &Images{Data: make([]float32, len(idx)*px), N: len(idx), Size: b.cfg.Size}
		for k, i := range idx {
			copy(batch.Images.Data[k*px:(k+1)*px], b.all.Data[i*px:(i+1)*px])
		}
	}
	b.pos.Step++
	if b.pos.Step == b.steps {
		b.pos = Position{Epoch: b.pos.Epoch + 1}
	}
	return batch
}

// Permutation returns the order in which epoch epoch visits n examples for
// the given seed: a Fisher-Yates shuffle driven by a PCG generator
// (math/rand/v2) seeded from (seed, epoch) through SplitMix64. The shuffle
// and its bounded-integer draws are implemented here, not taken from
// math/rand/v2's Shuffle, so the order does not depend on the Go version.
func Permutation(seed uint64, epoch, n int) []int {
	s1 := splitMix64(seed)
	s2 := splitMix64(s1 ^ splitMix64(uint64(epoch)+0x6a09e667f3bcc909))
	src := rand.NewPCG(s1, s2)
	p := identity(n)
	for i := n - 1; i > 0; i-- {
		j := boundedUint64(src, uint64(i+1))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// boundedUint64 returns a uniform value in [0, n) (Lemire's method).
func boundedUint64(src *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(src.Uint64(), n)
	if lo < n {
		threshold := -n % n
		for lo < threshold {
			hi, lo = bits.Mul64(src.Uint64(), n)
		}
	}
	return hi
}

// splitMix64 is the SplitMix64 finaliser, used to spread seeds.
func splitMix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func identity(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return p
}
