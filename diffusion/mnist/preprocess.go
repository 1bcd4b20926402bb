package mnist

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
)

// DefaultSize is the tutorial's target image size: 28x28 digits are resized
// to 32x32.
const DefaultSize = 32

// ScalePixel maps a raw pixel to [-1, 1] as the tutorial does:
// float32(p)/127.5 - 1, so 0 → -1 and 255 → 1.
func ScalePixel(p uint8) float32 { return scaleLUT[p] }

// scaleLUT caches ScalePixel for every byte value.
var scaleLUT = func() (t [256]float32) {
	for i := range t {
		t[i] = float32(i)/127.5 - 1
	}
	return t
}()

// ResizeBilinear resizes the single-channel row-major image src, of inH x inW
// pixels, into dst, of outH x outW pixels, like TensorFlow's
// tf.image.resize(method="bilinear", antialias=False), i.e. ResizeBilinear
// with half_pixel_centers=True: output pixel o samples the input at
// (o+0.5)*in/out-0.5, clamped to the edges, interpolating in float32 in the
// same order as TensorFlow. It panics if a size is not positive or a slice
// is too short.
func ResizeBilinear(dst, src []float32, inH, inW, outH, outW int) {
	newResizer(inH, inW, outH, outW).resize(dst, src)
}

// axisWeights are the interpolation taps of one axis: output index o reads
// input lo[o] and hi[o] with weight w[o] on hi.
type axisWeights struct {
	lo, hi []int
	w      []float32
}

// resizer holds precomputed bilinear taps for a given pair of sizes.
type resizer struct {
	inH, inW, outH, outW int
	y, x                 axisWeights
}

func newResizer(inH, inW, outH, outW int) *resizer {
	if inH <= 0 || inW <= 0 || outH <= 0 || outW <= 0 {
		panic(fmt.Sprintf("mnist: ResizeBilinear: sizes must be positive, got %dx%d -> %dx%d", inH, inW, outH, outW))
	}
	return &resizer{inH: inH, inW: inW, outH: outH, outW: outW,
		y: newAxisWeights(inH, outH), x: newAxisWeights(inW, outW)}
}

// newAxisWeights follows TensorFlow's compute_interpolation_weights with
// HalfPixelScaler, in float32.
func newAxisWeights(in, out int) axisWeights {
	scale := float32(in) / float32(out)
	a := axisWeights{lo: make([]int, out), hi: make([]int, out), w: make([]float32, out)}
	for o := range out {
		// Conversions round each step, so no fused multiply-add changes the result.
		src := float32((float32(o)+0.5)*scale) - 0.5
		f := float32(math.Floor(float64(src)))
		a.lo[o] = max(int(f), 0)
		a.hi[o] = min(int(math.Ceil(float64(src))), in-1)
		a.w[o] = src - f
	}
	return a
}

func (r *resizer) resize(dst, src []float32) {
	if len(src) < r.inH*r.inW || len(dst) < r.outH*r.outW {
		panic(fmt.Sprintf("mnist: ResizeBilinear: src has %d values (want %d), dst has %d (want %d)",
			len(src), r.inH*r.inW, len(dst), r.outH*r.outW))
	}
	for oy := range r.outH {
		top := src[r.y.lo[oy]*r.inW:][:r.inW]
		bot := src[r.y.hi[oy]*r.inW:][:r.inW]
		yw := r.y.w[oy]
		row := dst[oy*r.outW:][:r.outW]
		for ox := range r.outW {
			lo, hi, xw := r.x.lo[ox], r.x.hi[ox], r.x.w[ox]
			t := top[lo] + float32((top[hi]-top[lo])*xw)
			b := bot[lo] + float32((bot[hi]-bot[lo])*xw)
			row[ox] = t + float32((b-t)*yw)
		}
	}
}

// Images is a set or batch of preprocessed images: float32 NHWC
// [N, Size, Size, 1], flattened row-major in Data.
type Images struct {
	// Data holds N*Size*Size values in [-1, 1].
	Data []float32
	// N is the number of images.
	N int
	// Size is the height and width of each image.
	Size int
}

// Shape returns the NHWC shape [N, Size, Size, 1].
func (im *Images) Shape() [4]int { return [4]int{im.N, im.Size, im.Size, 1} }

// Image returns the i-th image's Size*Size values (a view into Data).
func (im *Images) Image(i int) []float32 {
	n := im.Size * im.Size
	return im.Data[i*n : (i+1)*n : (i+1)*n]
}

// Preprocess applies the tutorial's preprocessing to every example: scale
// to [-1, 1] with ScalePixel, then resize 28x28 → size x size with
// ResizeBilinear (size <= 0 means DefaultSize). The work is spread over
// GOMAXPROCS goroutines; the full training set at size 32 takes 245 MB.
func (d *Dataset) Preprocess(size int) *Images {
	size = sizeOrDefault(size)
	n, px := d.Len(), size*size
	out := &Images{Data: make([]float32, n*px), N: n, Size: size}
	r := newResizer(Rows, Cols, size, size)
	workers := max(1, min(runtime.GOMAXPROCS(0), n/256))
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*n/workers, (w+1)*n/workers
		wg.Go(func() {
			var scratch [PixelsPerImage]float32
			for i := lo; i < hi; i++ {
				d.preprocessOne(r, out.Data[i*px:(i+1)*px], &scratch, i)
			}
		})
	}
	wg.Wait()
	return out
}

// PreprocessIndices preprocesses only the examples at the given indices, in
// that order, like Preprocess does (size <= 0 means DefaultSize): for
// batches, without preprocessing the whole set.
func (d *Dataset) PreprocessIndices(indices []int, size int) *Images {
	size = sizeOrDefault(size)
	return &Images{Data: d.AppendPreprocessed(nil, indices, size), N: len(indices), Size: size}
}

// AppendPreprocessed appends to dst the preprocessed examples at the given
// indices (len(indices)*size*size values, NHWC order) and returns the
// extended slice; pass buf[:0] to reuse a buffer. size <= 0 means
// DefaultSize. It panics if an index is out of range.
func (d *Dataset) AppendPreprocessed(dst []float32, indices []int, size int) []float32 {
	size = sizeOrDefault(size)
	px := size * size
	start := len(dst)
	dst = slices.Grow(dst, len(indices)*px)[:start+len(indices)*px]
	r := newResizer(Rows, Cols, size, size)
	var scratch [PixelsPerImage]float32
	for k, i := range indices {
		d.preprocessOne(r, dst[start+k*px:start+(k+1)*px], &scratch, i)
	}
	return dst
}

// preprocessOne scales example i into scratch and resizes it into dst.
func (d *Dataset) preprocessOne(r *resizer, dst []float32, scratch *[PixelsPerImage]float32, i int) {
	img := &d.Images[i]
	for j, p := range img {
		scratch[j] = scaleLUT[p]
	}
	r.resize(dst, scratch[:])
}

func sizeOrDefault(size int) int {
	if size <= 0 {
		return DefaultSize
	}
	return size
}
