package kernel

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
)

// ToGray maps a pixel value in [-1, 1] to an 8-bit gray level:
// round(clip((v+1)*127.5, 0, 255)), rounding halves away from zero.
// So -1 maps to 0, +1 to 255 and 0 (127.5) to 128. Values outside [-1, 1]
// are clipped, and NaN maps to 0.
//
// The JAX tutorial this project reproduces used x*127.5+1 instead, which sends
// -1 to -126.5 (clipped to 0) and +1 to 128.5, so its samples looked dim and
// half their range was lost; this function is the corrected mapping.
func ToGray(v float32) uint8 {
	g := (float64(v) + 1) * 127.5
	switch {
	case g != g: // NaN
		return 0
	case g <= 0:
		return 0
	case g >= 255:
		return 255
	}
	return uint8(math.Round(g))
}

// FromGray is the inverse of [ToGray] on gray levels: it maps 0..255 to
// [-1, 1] as g/127.5 - 1, the usual way to feed MNIST bytes to the model.
func FromGray(g uint8) float32 {
	return float32(float64(g)/127.5 - 1)
}

// GrayPalette returns a 256-entry palette where index i is the gray level i,
// so a gray value can be used directly as a palette index.
func GrayPalette() color.Palette {
	p := make(color.Palette, 256)
	for i := range p {
		p[i] = color.Gray{Y: uint8(i)}
	}
	return p
}

// Batch is a batch of single-channel images stored flat in NHWC order with
// C=1: pixel (y, x) of image i is Data[(i*H+y)*W+x]. Values are expected in
// [-1, 1]. It is the common input type of [Grid] and [GIF]; callers copy a
// model's output tensor into Data.
type Batch struct {
	N, H, W int
	Data    []float32
}

// Validate reports whether the dimensions are non-negative and
// len(Data) == N*H*W.
func (b Batch) Validate() error {
	if b.N < 0 || b.H < 0 || b.W < 0 {
		return fmt.Errorf("kernel: batch has negative dimensions N=%d H=%d W=%d", b.N, b.H, b.W)
	}
	if want := b.N * b.H * b.W; len(b.Data) != want {
		return fmt.Errorf("kernel: batch N=%d H=%d W=%d needs %d values, has %d", b.N, b.H, b.W, want, len(b.Data))
	}
	return nil
}

// Image returns the pixels of image i (H*W values, row-major), sharing
// storage with b.
func (b Batch) Image(i int) []float32 {
	n := b.H * b.W
	return b.Data[i*n : (i+1)*n : (i+1)*n]
}

// Slice returns the images lo..hi-1 as a Batch sharing storage with b, e.g.
// b.Slice(0, 16) to show only the first 16 samples.
func (b Batch) Slice(lo, hi int) Batch {
	n := b.H * b.W
	return Batch{N: hi - lo, H: b.H, W: b.W, Data: b.Data[lo*n : hi*n : hi*n]}
}

// BatchFromImages copies images, each h*w values in row-major order, into a
// new Batch. It fails if an image has the wrong length.
func BatchFromImages(images [][]float32, h, w int) (Batch, error) {
	if h < 0 || w < 0 {
		return Batch{}, errors.New("kernel: negative image size")
	}
	b := Batch{N: len(images), H: h, W: w, Data: make([]float32, 0, len(images)*h*w)}
	for i, img := range images {
		if len(img) != h*w {
			return Batch{}, fmt.Errorf("kernel: image %d has %d values, want %d (%dx%d)", i, len(img), h*w, h, w)
		}
		b.Data = append(b.Data, img...)
	}
	return b, nil
}

// PadGray is the gray level [Grid] uses for padding: mid-gray, so the borders
// between tiles stay visible around MNIST's black backgrounds.
const PadGray uint8 = 128

// GridSize returns the width and height in pixels of the grid that [Grid]
// makes for n images of h x w with the given columns, padding and scale
// (after the same defaulting of cols, pad and scale).
func GridSize(n, h, w, cols, pad, scale int) (width, height int) {
	cols, pad, scale = gridDefaults(n, cols, pad, scale)
	rows := 0
	if cols > 0 {
		rows = (n + cols - 1) / cols
	}
	width = cols*w*scale + (cols+1)*pad
	height = rows*h*scale + (rows+1)*pad
	if n == 0 {
		width, height = 2*pad, 2*pad
	}
	return width, height
}

func gridDefaults(n, cols, pad, scale int) (int, int, int) {
	if cols <= 0 {
		cols = int(math.Ceil(math.Sqrt(float64(n))))
	}
	if n > 0 && cols > n {
		cols = n
	}
	if pad < 0 {
		pad = 0
	}
	if scale < 1 {
		scale = 1
	}
	return cols, pad, scale
}

// Grid tiles the images of b into one gray image, row by row, cols images per
// row (cols <= 0 picks a square-ish ceil(sqrt(N)); cols > N is reduced to N).
// Every tile is upscaled scale times (nearest neighbour; scale < 1 means 1)
// and surrounded by pad pixels of [PadGray], including the outer border.
// Pixels are mapped with [ToGray]; unused cells of the last row are padding.
//
// Grid panics if b is inconsistent (see [Batch.Validate]): that is a
// programming error, like an index out of range.
func Grid(b Batch, cols, pad, scale int) *image.Gray {
	return GridWithPad(b, cols, pad, scale, PadGray)
}

// GridWithPad is [Grid] with an explicit gray level for the padding.
func GridWithPad(b Batch, cols, pad, scale int, padGray uint8) *image.Gray {
	if err := b.Validate(); err != nil {
		panic(err)
	}
	width, height := GridSize(b.N, b.H, b.W, cols, pad, scale)
	cols, pad, scale = gridDefaults(b.N, cols, pad, scale)
	img := image.NewGray(image.Rect(0, 0, width, height))
	if padGray != 0 {
		for i := range img.Pix {
			img.Pix[i] = padGray
		}
	}
	tw, th := b.W*scale, b.H*scale
	row := make([]uint8, tw)
	for i := 0; i < b.N; i++ {
		x0 := pad + (i%cols)*(tw+pad)
		y0 := pad + (i/cols)*(th+pad)
		src := b.Image(i)
		for y := 0; y < b.H; y++ {
			for x := 0; x < b.W; x++ {
				g := ToGray(src[y*b.W+x])
				for k := 0; k < scale; k++ {
					row[x*scale+k] = g
				}
			}
			for k := 0; k < scale; k++ {
				off := img.PixOffset(x0, y0+y*scale+k)
				copy(img.Pix[off:off+tw], row)
			}
		}
	}
	return img
}

// Concat joins batches of images of the same size into one new Batch, in order.
func Concat(batches ...Batch) (Batch, error) {
	if len(batches) == 0 {
		return Batch{}, errors.New("kernel: Concat of no batches")
	}
	out := Batch{H: batches[0].H, W: batches[0].W}
	for i, b := range batches {
		if b.H != out.H || b.W != out.W {
			return Batch{}, fmt.Errorf("kernel: Concat: batch %d holds %dx%d images, batch 0 %dx%d", i, b.H, b.W, out.H, out.W)
		}
		out.N += b.N
		out.Data = append(out.Data, b.Data...)
	}
	return out, nil
}
