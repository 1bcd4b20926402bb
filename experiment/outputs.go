package experiment

import (
	"fmt"
	"image"
	"io"
	"path/filepath"
	"strconv"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/core/tensors/numpy"

	"github.com/godiffusion/godiffusion/diffusion"
	"github.com/godiffusion/godiffusion/internal/atomicfile"
	"github.com/godiffusion/godiffusion/kernel"
)

// BatchOf converts an [N, H, W, 1] float32 tensor to a kernel.Batch for display.
func BatchOf(t *tensors.Tensor) (kernel.Batch, error) {
	dims := t.Shape().Dimensions
	if len(dims) != 4 || dims[3] != 1 {
		return kernel.Batch{}, fmt.Errorf("images shaped %v, want [N, H, W, 1]", dims)
	}
	data, err := tensors.CopyFlatData[float32](t)
	if err != nil {
		return kernel.Batch{}, err
	}
	return kernel.Batch{N: dims[0], H: dims[1], W: dims[2], Data: data}, nil
}

// GridScale is the up-scaling of sample grids and GIFs written by the commands.
const GridScale = 2

// WriteSamples writes res.Images as a PNG grid of cols columns (0: square-ish) at pngPath and, when
// gifPath is not empty and the result has a chain, the denoising chain as an animated GIF (at most
// gifImages images per frame). It returns the paths written.
func WriteSamples(res *diffusion.SampleResult, pngPath, gifPath string, cols, gifImages int) ([]string, error) {
	images, err := BatchOf(res.Images)
	if err != nil {
		return nil, err
	}
	if err := kernel.WritePNG(pngPath, kernel.Grid(images, cols, 2, GridScale)); err != nil {
		return nil, err
	}
	written := []string{pngPath}
	if gifPath == "" || len(res.Chain) == 0 {
		return written, nil
	}
	frames := make([]kernel.Batch, len(res.Chain))
	for i, c := range res.Chain {
		b, err := BatchOf(c)
		if err != nil {
			return nil, err
		}
		frames[i] = b.Slice(0, min(gifImages, b.N))
	}
	g := kernel.GIF(frames, kernel.GIFOptions{Pad: 2, Scale: GridScale, Delay: 8, Hold: 200})
	if err := kernel.WriteGIF(gifPath, g); err != nil {
		return nil, err
	}
	return append(written, gifPath), nil
}

// ImageFileName is the name of image i of n in the folder WriteImageFiles writes: its index with
// leading zeros, at least five digits (00000.png, 00001.png, ...), so that names sort in image order.
func ImageFileName(i, n int) string {
	return fmt.Sprintf("%0*d.png", max(5, len(strconv.Itoa(n-1))), i)
}

// WriteImageFiles writes every image of b as its own PNG file in dir (created if missing), named
// ImageFileName: 8-bit gray at the images' size, pixels mapped with kernel.ToGray as in the grids.
// This is the folder of images that FID tools read. Each file is written atomically.
func WriteImageFiles(dir string, b kernel.Batch) error {
	if err := b.Validate(); err != nil {
		return err
	}
	for i := range b.N {
		img := image.NewGray(image.Rect(0, 0, b.W, b.H))
		for k, v := range b.Image(i) {
			img.Pix[k] = kernel.ToGray(v)
		}
		if err := kernel.WritePNG(filepath.Join(dir, ImageFileName(i, b.N)), img); err != nil {
			return err
		}
	}
	return nil
}

// WriteNPY writes the images of b to path as a NumPy array (.npy, format version 1.0) of uint8
// gray levels shaped [N, H, W, 1] (C order): the pixels of WriteImageFiles' PNGs, 0 for -1 and 255
// for +1 (kernel.ToGray). np.load(path) reads it. The file is written atomically.
func WriteNPY(path string, b kernel.Batch) error {
	if err := b.Validate(); err != nil {
		return err
	}
	pixels := make([]uint8, len(b.Data))
	for k, v := range b.Data {
		pixels[k] = kernel.ToGray(v)
	}
	t := tensors.FromFlatDataAndDimensions(pixels, b.N, b.H, b.W, 1)
	defer t.FinalizeAll()
	// numpy.ToNpyWriter loses the error of a failed write, but atomicfile's buffered writer keeps it
	// and returns it when flushing.
	return atomicfile.Write(path, func(w io.Writer) error { return numpy.ToNpyWriter(t, w) })
}
