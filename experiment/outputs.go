package experiment

import (
	"fmt"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/godiffusion/godiffusion/diffusion"
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

// WriteSamples writes res.Images as a PNG grid at pngPath and, when gifPath is not empty and the
// result has a chain, the denoising chain as an animated GIF (at most gifImages images per frame).
// It returns the paths written.
func WriteSamples(res *diffusion.SampleResult, pngPath, gifPath string, gifImages int) ([]string, error) {
	images, err := BatchOf(res.Images)
	if err != nil {
		return nil, err
	}
	cols := 0 // square-ish grid
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
